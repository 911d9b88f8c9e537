/* The pages' token (mission.js, admin.js): a ?token= given once is kept for
 * the browser session (sessionStorage "sortie_token") and taken out of the
 * address bar, other parameters kept; the sign-in side (or another script)
 * may put a newer one there, which storedToken() then gives. Without one, the
 * sortie_token cookie, if any, travels by itself. */

/* The token of the page's session, or null. */
export function storedToken() {
  try { return sessionStorage.getItem('sortie_token'); } catch (e) { return null; }
}

/* The ?token= of the address, kept and taken out of it; else storedToken(). */
export function takeToken() {
  try {
    const q = new URLSearchParams(location.search);
    const t = q.get('token');
    if (!t) return storedToken();
    sessionStorage.setItem('sortie_token', t);
    q.delete('token');
    const rest = q.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
    return t;
  } catch (e) {
    return null; /* storage disabled: the cookie, if any, still works */
  }
}
