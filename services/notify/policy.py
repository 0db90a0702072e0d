"""Which resource and action each route of the notify service is about. Who may do what to
which resource (grants, scopes, protected fields) stays central: shared/web/policy.py."""

from __future__ import annotations

from shared.web.policy import Action, Resource, RouteRule, rule

ROUTES: dict[tuple[str, str], RouteRule] = {
    ("GET", "/v1/alerts"): rule(Resource.alert, Action.read),
    ("GET", "/v1/alerts/{alert_id}"): rule(Resource.alert, Action.read, "alert_id"),
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): rule(Resource.alert, Action.write, "alert_id"),
    ("POST", "/v1/webhooks"): rule(Resource.webhook, Action.write),
    ("GET", "/v1/webhooks"): rule(Resource.webhook, Action.read),
    ("GET", "/v1/webhooks/{webhook_id}"): rule(Resource.webhook, Action.read, "webhook_id"),
    ("DELETE", "/v1/webhooks/{webhook_id}"): rule(Resource.webhook, Action.write, "webhook_id"),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): rule(Resource.webhook, Action.read, "webhook_id"),
    ("POST", "/v1/webhooks/{webhook_id}/secret"): rule(Resource.webhook, Action.write, "webhook_id"),
    # mail (services/notify/mail/): a person's own entry; the directory list, mailboxes and the
    # queue are administrators' (the list of people is guarded as the mailboxes are).
    ("GET", "/v1/people"): rule(Resource.mail_recipient, Action.read),
    ("PUT", "/v1/people/{subject}"): rule(Resource.person, Action.write, "subject"),
    ("GET", "/v1/people/{subject}"): rule(Resource.person, Action.read, "subject"),
    ("POST", "/v1/mail-recipients"): rule(Resource.mail_recipient, Action.write),
    ("GET", "/v1/mail-recipients"): rule(Resource.mail_recipient, Action.read),
    ("GET", "/v1/mail-recipients/{recipient_id}"): rule(Resource.mail_recipient, Action.read, "recipient_id"),
    ("DELETE", "/v1/mail-recipients/{recipient_id}"): rule(Resource.mail_recipient, Action.write, "recipient_id"),
    ("GET", "/v1/mail-deliveries"): rule(Resource.mail_delivery, Action.read),
}
