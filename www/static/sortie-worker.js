/* The SharedWorker that holds the one push connection of all the tabs of an
 * origin and a user (sortie-share.js; its name is that key). */
import { serveSharedWorker } from './sortie-share.js';

serveSharedWorker(self);
