"""The peer of `POST /api/fire` for `make bench`: the same request done the
way the seed did it, Flask + redis-py under gunicorn.

It does the same work as cgi-bin's fire: verify the HS256 JWT, check the JSON
body and its fields, run the very same Lua script (lib/lua/common.lua +
fire.lua) with EVALSHA, and answer 201 with the script's JSON, or a
problem+json. So the difference measured is the stack, not the work.

    SORTIE_CONF=... gunicorn -w 8 -b 127.0.0.1:PORT --chdir bench/peer fire_flask:app

Reads redis.host, redis.port, redis.prefix, jwt.secret_file and the fire limits
from the same sortie.conf (defaults as lib/cfg.c).
"""
import json
import os
import re

import jwt
import redis
from flask import Flask, Response, request

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "..", "..", "lib", "lua")


def load_conf(path):
    conf = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                k, v = line.split("=", 1)
                conf[k.strip()] = v.strip()
    return conf


conf = load_conf(os.environ["SORTIE_CONF"])
with open(conf["jwt.secret_file"], "rb") as f:
    SECRET = f.read().strip()
PREFIX = conf.get("redis.prefix", "sortie:")
MAXLEN = conf.get("history.maxlen", "1000")
WINDOW = conf.get("api.fire_window_s", "300")
RATE = conf.get("api.fire_rate_per_min", "10")
IDEM_TTL = conf.get("api.idempotency_ttl_s", "86400")
BODY_MAX = int(conf.get("api.body_max", "16384"))
PROBLEM_BASE = conf.get("api.problem_base", "/problems/")
EQUITY = "1000000000000"  # 10000.00 in units of 10^-8, the default

r = redis.Redis(host=conf.get("redis.host", "127.0.0.1"), port=int(conf.get("redis.port", "6379")))
with open(os.path.join(LUA, "common.lua")) as a, open(os.path.join(LUA, "fire.lua")) as b:
    fire_script = r.register_script(a.read() + b.read())

ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
app = Flask(__name__)


def problem(status, slug, detail):
    body = {"type": PROBLEM_BASE + slug, "title": slug,
            "status": status, "detail": detail}
    return Response(json.dumps(body), status=status, content_type="application/problem+json")


@app.post("/api/fire")
def fire():
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return problem(401, "unauthorized", "a bearer token is required")
    try:
        claims = jwt.decode(auth[7:], SECRET, algorithms=["HS256"],
                            options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as e:
        return problem(401, "unauthorized", str(e))
    uid = claims["sub"]
    if not isinstance(uid, str) or not ID.match(uid):
        return problem(401, "unauthorized", "bad sub")
    if request.mimetype != "application/json":
        return problem(415, "unsupported-media-type", "send application/json")
    if (request.content_length or 0) > BODY_MAX:
        return problem(413, "too-large", "body too large")
    try:
        body = json.loads(request.get_data())
    except ValueError:
        return problem(400, "invalid-json", "body is not JSON")
    if not isinstance(body, dict):
        return problem(400, "invalid-json", "body must be an object")
    sid = body.get("signal_id")
    if not isinstance(sid, str) or not ID.match(sid) or sid in (".", ".."):
        return problem(400, "invalid-field", "signal_id")
    ts = body.get("timestamp")
    if not isinstance(ts, int) or isinstance(ts, bool):
        return problem(400, "invalid-field", "timestamp")
    idem = request.headers.get("Idempotency-Key", "")
    res = fire_script(keys=[], args=[PREFIX, MAXLEN, EQUITY, sid, uid, str(ts), WINDOW, RATE,
                                     idem, IDEM_TTL])
    status, out = int(res[0]), res[1]
    if status >= 400:
        return problem(status, json.loads(out).get("slug", "error"), json.loads(out).get("detail"))
    return Response(out, status=status, content_type="application/json")
