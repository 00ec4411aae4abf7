"""Runs django/allauthgo_evict.py for evict_test.go, without Django installed.

    python3 evict_driver.py vectors   < {"secret": ..., "cases": [...]}  -> [{"body", "signature"}]
    python3 evict_driver.py post      < {"secret", "url", "session_keys"} -> {"status", "answer"} or {"error"}
    python3 evict_driver.py django    < {"secret", "urls", "events": [...]} -> {"posts": [body, ...]}
    python3 evict_driver.py exit      < {"secret", "urls", "events": [...]} -> {"fired": n}, then exits

"vectors" and "post" run only the wire-format part of the snippet (above its
"Django wiring" line); "django" runs all of it over stand-ins for the Django
and allauth modules it imports, fires the events, and waits until the
snippet's thread has POSTed them. "exit" does the same but exits at once,
as a management command or a short script does: whatever reaches the Go side
is what the snippet itself sends before the interpreter is gone. Its log
(warnings of the "allauthgo" logger) goes to stderr.
"""
import datetime
import json
import logging
import os
import sys
import threading
import time
import types
import urllib.error

SNIPPET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "django", "allauthgo_evict.py")
MARKER = "# ---- Django wiring"


def wire_format():
    with open(SNIPPET) as f:
        source = f.read()
    ns = {"__name__": "allauthgo_evict_wire"}
    exec(compile(source.split(MARKER)[0], SNIPPET, "exec"), ns)
    return ns


class Signal:
    def __init__(self):
        self.receivers = []

    def connect(self, fn, sender=None):
        self.receivers.append((fn, sender))

    def send(self, sender, **kwargs):
        for fn, only in self.receivers:
            if only is None or only is sender:
                fn(sender=sender, **kwargs)


class Model:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class Session(Model):
    def get_decoded(self):
        return {} if self.anonymous else {"_auth_user_id": "1"}


class User(Model):
    pass


def fake_django(secret, urls, engine):
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, m)
        return m

    def receiver(signal, sender=None):
        def decorate(fn):
            signal.connect(fn, sender)
            return fn
        return decorate

    signals = {n: Signal() for n in (
        "post_delete", "post_save", "user_logged_out", "password_changed", "password_set", "password_reset")}
    module("django")
    module("django.conf", settings=types.SimpleNamespace(
        ALLAUTHGO_EVICT_URLS=urls, ALLAUTHGO_EVICT_SECRET=secret,
        SESSION_ENGINE=engine))
    module("django.contrib")
    module("django.contrib.auth", get_user_model=lambda: User)
    module("django.contrib.auth.signals", user_logged_out=signals["user_logged_out"])
    module("django.contrib.sessions")
    module("django.contrib.sessions.models", Session=Session)
    module("django.db", transaction=types.SimpleNamespace(on_commit=lambda fn: fn()))  # autocommit
    module("django.db.models")
    module("django.db.models.signals", post_delete=signals["post_delete"], post_save=signals["post_save"])
    module("django.dispatch", receiver=receiver)
    module("django.utils", timezone=types.SimpleNamespace(
        now=lambda: datetime.datetime.now(datetime.timezone.utc)))
    module("allauth")
    module("allauth.account")
    module("allauth.account.signals", password_changed=signals["password_changed"],
           password_set=signals["password_set"], password_reset=signals["password_reset"])
    return signals


def load_snippet(req):
    signals = fake_django(req["secret"], req["urls"], req.get("session_engine", "django.contrib.sessions.backends.db"))
    snippet = types.ModuleType("allauthgo_evict")
    snippet.__file__ = SNIPPET
    with open(SNIPPET) as f:
        exec(compile(f.read(), SNIPPET, "exec"), snippet.__dict__)
    return signals, snippet


def fire(signals, ev):
    now = datetime.datetime.now(datetime.timezone.utc)
    hour = datetime.timedelta(hours=1)
    kind = ev["kind"]
    if kind == "session_deleted":
        signals["post_delete"].send(Session, instance=Session(
            session_key=ev["key"], expire_date=now + (hour if ev.get("live", True) else -hour),
            anonymous=ev.get("anonymous", False)))
    elif kind == "logged_out":
        request = types.SimpleNamespace(session=types.SimpleNamespace(session_key=ev["key"]))
        signals["user_logged_out"].send(User, request=request, user=User(pk=ev["user"]))
    elif kind == "user_saved":
        signals["post_save"].send(User, instance=User(pk=ev["user"], is_active=ev["active"]), created=False)
    elif kind == "user_deleted":
        signals["post_delete"].send(User, instance=User(pk=ev["user"]))
    elif kind == "password_changed":
        signals["password_changed"].send(None, request=None, user=User(pk=ev["user"]))
    else:
        raise ValueError(kind)


def run_exit(req):
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
    signals, _ = load_snippet(req)
    for ev in req["events"]:
        fire(signals, ev)
    return {"fired": len(req["events"])}


def run_django(req):
    signals, snippet = load_snippet(req)

    posts, done = [], threading.Condition()
    real_post = snippet.post

    def counting_post(url, secret, body, timeout=2.0):
        status = 0
        try:
            status, answer = real_post(url, secret, body, timeout)
            return status, answer
        except urllib.error.HTTPError as e:
            status = e.code
            raise
        finally:
            with done:
                posts.append({"url": url, "body": json.loads(body), "status": status})
                done.notify_all()
    snippet.post = counting_post  # the thread looks post up at call time

    for ev in req["events"]:
        fire(signals, ev)
        if ev.get("wait"):  # let the thread send before the next event
            with done:
                done.wait_for(lambda: len(posts) >= ev["wait"], timeout=10)

    with done:
        done.wait_for(lambda: len(posts) >= req["want_posts"], timeout=10)
    time.sleep(0.2)  # would anything more be sent?
    with done:
        return {"posts": posts}


def main():
    mode = sys.argv[1]
    req = json.load(sys.stdin)
    secret = req["secret"].encode()
    if mode == "vectors":
        w = wire_format()
        out = []
        for c in req["cases"]:
            body = w["encode"](session_keys=c.get("session_keys", ()), user_ids=c.get("user_ids", ()), nonce=c["nonce"])
            out.append({"body": body.decode(), "signature": w["sign"](secret, c["timestamp"], body)})
    elif mode == "post":
        w = wire_format()
        try:
            status, answer = w["post"](req["url"], secret, w["encode"](session_keys=req["session_keys"]))
            out = {"status": status, "answer": answer}
        except urllib.error.HTTPError as e:
            out = {"error": e.code, "answer": json.loads(e.read())}
    elif mode == "django":
        out = run_django(req)
    elif mode == "exit":
        out = run_exit(req)
    else:
        raise ValueError(mode)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
