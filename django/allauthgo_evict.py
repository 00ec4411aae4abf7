# allauthgo_evict.py: tell the Go services (github.com/allauthgo/headless)
# that sessions ended, so that they stop accepting them at once instead of at
# the end of their cache TTL. Standard library only.
#
# Put this file in one of your Django apps and import it from that app's
# AppConfig.ready(). Settings:
#
#   ALLAUTHGO_EVICT_URLS = ["http://api-1:3000/_allauthgo/evict"]
#   ALLAUTHGO_EVICT_SECRET = "..."  # headless.EvictConfig.Secret, 32+ bytes
#
# Evictions are sent after the database transaction commits, by one
# background thread, in batches: a slow or unreachable Go service never slows
# a logout. A failure is logged, not retried: the session then ends at the
# Go side's cache TTL. When the process exits (a management command, a
# script) what is still queued is sent first, waiting at most
# FLUSH_TIMEOUT seconds; what could not be sent by then is logged.
import atexit
import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
import urllib.request

TIMESTAMP_HEADER = "X-Allauthgo-Timestamp"
SIGNATURE_HEADER = "X-Allauthgo-Signature"
MAX_BATCH = 500  # keys per request: well under the Go side's 64 KiB body limit
FLUSH_TIMEOUT = 5.0  # seconds an exiting process waits for queued evictions

logger = logging.getLogger("allauthgo")


def encode(session_keys=(), user_ids=(), nonce=None):
    """The request body: compact JSON with sorted keys, and a random nonce."""
    payload = {"nonce": nonce or secrets.token_hex(16)}
    if session_keys:
        payload["session_keys"] = [str(k) for k in session_keys]
    if user_ids:
        payload["user_ids"] = [str(u) for u in user_ids]
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign(secret, timestamp, body):
    """The signature header: "v1=" and the hex HMAC-SHA256 of "<timestamp>.<body>"."""
    mac = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def post(url, secret, body, timeout=2.0):
    """POSTs one signed eviction; raises on a network error or a non-2xx answer."""
    timestamp = int(time.time())
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    })
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


# ---- Django wiring (above: the wire format, which the Go tests check) ----

from allauth.account.signals import password_changed, password_reset, password_set  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.signals import user_logged_out  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models.signals import post_delete, post_save  # noqa: E402
from django.dispatch import receiver  # noqa: E402
from django.utils import timezone  # noqa: E402

_queue = queue.SimpleQueue()
_worker = None
_worker_lock = threading.Lock()
_pending = 0  # evictions queued or being sent
_idle = threading.Condition()


def _send_batches():
    global _pending
    while True:
        batch = {"session_keys": [], "user_ids": []}
        field, value = _queue.get()
        batch[field].append(value)
        while len(batch["session_keys"]) + len(batch["user_ids"]) < MAX_BATCH:
            try:
                field, value = _queue.get_nowait()
            except queue.Empty:
                break
            batch[field].append(value)
        try:
            body = encode(**batch)
            secret = settings.ALLAUTHGO_EVICT_SECRET.encode()
            for url in settings.ALLAUTHGO_EVICT_URLS:
                try:
                    post(url, secret, body)
                except Exception as e:  # an HTTPError's body says why the Go side refused
                    detail = e.read()[:200] if hasattr(e, "read") else b""
                    logger.warning("allauthgo: eviction to %s failed: %s %s", url, e, detail)
        except Exception:
            logger.exception("allauthgo: eviction batch not sent")
        finally:
            with _idle:
                _pending -= len(batch["session_keys"]) + len(batch["user_ids"])
                _idle.notify_all()


def _flush_at_exit():
    # The thread is a daemon, so that a hung Go service never blocks an exit:
    # without this wait it would die with the process, queue and all.
    with _idle:
        if not _idle.wait_for(lambda: _pending <= 0, timeout=FLUSH_TIMEOUT):
            logger.warning("allauthgo: exiting with %d eviction(s) not sent; those sessions end at the "
                           "Go side's cache TTL", _pending)


atexit.register(_flush_at_exit)


def evict(session_keys=(), user_ids=()):
    """Queues an eviction, sent once the current transaction commits."""
    session_keys, user_ids = [str(k) for k in session_keys], [str(u) for u in user_ids]

    def enqueue():
        global _worker, _pending
        with _idle:
            _pending += len(session_keys) + len(user_ids)
        for k in session_keys:
            _queue.put(("session_keys", k))
        for u in user_ids:
            _queue.put(("user_ids", u))
        with _worker_lock:  # (re)start the thread, e.g. in a forked worker
            if _worker is None or not _worker.is_alive():
                _worker = threading.Thread(target=_send_batches, daemon=True)
                _worker.start()
    transaction.on_commit(enqueue)


_DB_SESSIONS = settings.SESSION_ENGINE in (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


@receiver(post_delete, sender=Session)
def _session_deleted(sender, instance, **kwargs):
    # Logout (allauth's too: browser and app), a password change (the old
    # key), an admin deleting sessions. Expired sessions (clearsessions) are
    # already refused by allauth; anonymous ones were never cached.
    if instance.expire_date > timezone.now() and "_auth_user_id" in instance.get_decoded():
        evict(session_keys=[instance.session_key])


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    # Session backends without a database row (cache, file): Django sends
    # this signal just before it deletes the session.
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key and not _DB_SESSIONS:
        evict(session_keys=[key])


@receiver(post_save, sender=get_user_model())
def _user_saved(sender, instance, **kwargs):
    # A deactivated user: allauth answers 401 for all their sessions. Needs
    # fiberauth.Config.UserIndex on the Go side.
    if not instance.is_active:
        evict(user_ids=[instance.pk])


@receiver(password_changed)
@receiver(password_set)
@receiver(password_reset)
def _password_changed(sender, request, user, **kwargs):
    # The user's other sessions now answer 401. Needs UserIndex too.
    evict(user_ids=[user.pk])


@receiver(post_delete, sender=get_user_model())
def _user_deleted(sender, instance, **kwargs):
    evict(user_ids=[instance.pk])
