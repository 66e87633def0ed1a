"""Webhooks: a session's events POSTed to receivers, signed, in order, each
once, resumed after a restart from a cursor kept in the store (docs/webhooks.md)."""

from roo_daemon.webhooks.dispatcher import WebhookDispatcher
from roo_daemon.webhooks.hooks import Webhook, hooks_of
from roo_daemon.webhooks.policy import HostPolicy
from roo_daemon.webhooks.signing import sign, verify

__all__ = ["HostPolicy", "Webhook", "WebhookDispatcher", "hooks_of", "sign", "verify"]
