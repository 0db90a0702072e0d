"""The access model of every Obruten service, in one file.

Read it top to bottom: which role may do what to which kind of resource (GRANTS), which rows a
role sees (SCOPES), who sees the fields that can reveal where a protected child is
(PROTECTED_FIELDS). Which resource each route is about is each service's policy.py (ROUTES),
plus COMMON_ROUTES here. `authorize` applies it: it is the dependency of every /v1 router
(`v1_router` below), after `authenticate`.

Answers
    401  no or an invalid token (shared/web/auth.py).
    403  the role may not do that to that kind of resource at all (a central analyst asking for
         a placement, a service account for anything but what it calls), a district-scoped role
         whose token names no configured district, a `district` filter naming another district,
         or a new record for another district (the caller names the district, so no id is probed).
    404  the role may, but the record is outside the caller's rows (another district's
         placement): the same answer as for an id that does not exist, so ids cannot be probed.
    Lists are filtered to the caller's rows without being asked.

Rows (SCOPES)
    all       every district.
    district  the district in the caller's token: a record's own `district` decides (a
              placement's, a school record's, an examination's, an alert's; a child's own).
    protected only records of a child with protected identity or in protected housing
              (`skyddat_boende`): the teaching team for protected housing (Lärteamet).
    A principal with several roles sees the union of what the roles granting the action see.

Protected fields
    For a child with protected identity or a placement in `skyddat_boende`, the placement's
    `location`, `outside_municipality` and the school unit codes are stored but answered as null except to the
    roles in PROTECTED_FIELDS, and for the first two to the caseworker named on the placement (its `caseworker`
    is their token's subject): whoever placed the child must be able to reach it. An examination's `provider`
    likewise. Events, alerts, webhooks, reports and logs never carry them, whoever asks. A service
    that has not (yet) learnt whether a child is protected treats it as protected. Privileged
    changes (PRIVILEGED: 403 for other roles, audited as `write:<change>`) decide who sees them.

Aggregate reports (`/v1/reports/...`) are not personal data: small counts are suppressed, so the
roles reading them are not district-scoped.
The one row-level list under /v1/reports/ (the school-start follow-up, one row per placement)
is `report_rows`: it must name a district, and a scoped caller may name only their own (403
otherwise); central_analyst has no grant for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import ColumnElement, false, or_, true

from shared.kernel.errors import Problem, not_found
from shared.web.auth import Principal, Role, authenticate
from shared.web.runtime import runtime
from shared.web.schemas import has_control

log = logging.getLogger("obruten.policy")


class Resource(StrEnum):
    child = "child"
    placement = "placement"
    # The placement as its events describe it (no location, caseworker): for other services.
    placement_snapshot = "placement_snapshot"
    # Keyed hashes of placed children's personnummer, for the school service's SS 12000 intake.
    pupil_keys = "pupil_keys"
    school_plan = "school_plan"
    school_start = "school_start"
    school_end = "school_end"
    # Everything recorded about one placement's schooling.
    schooling = "schooling"
    examination = "examination"
    alert = "alert"
    webhook = "webhook"
    report = "report"
    # A district's own row-level follow-up lists (one row per placement, no suppression).
    report_rows = "report_rows"
    audit = "audit"
    # Notify's mail (issue 16): the people directory (a person sets their own entry), the
    # functional mailboxes and the mail queue (administrators).
    person = "person"
    mail_recipient = "mail_recipient"
    mail_delivery = "mail_delivery"


class Action(StrEnum):
    read = "read"
    write = "write"


class Scope(StrEnum):
    all = "all"
    district = "district"
    protected = "protected"


class ProtectedField(StrEnum):
    location = "location"
    outside_municipality = "outside_municipality"  # narrows down where the child is
    school_unit = "school_unit"
    provider = "provider"  # an examination's clinic: it can reveal where the child lives


class Privileged(StrEnum):
    """Writes that decide who sees a protected field: never open to whom they would open it.
    (Setting protected identity is open to caseworkers: the safe direction.)"""

    name_caseworker = "name_caseworker"  # `caseworker` of a placement: who then sees its location
    lift_protection = "lift_protection"  # a child's protected_identity, true -> false


R = frozenset({Action.read})
RW = frozenset({Action.read, Action.write})
SCHOOL = {Resource.school_plan: RW, Resource.school_start: RW, Resource.school_end: RW, Resource.schooling: R}

# role -> resource -> actions. Anything not listed is refused with 403.
GRANTS: dict[Role, dict[Resource, frozenset[Action]]] = {
    # Subscriptions, configuration, the audit trail; and every record, for support and repair.
    # Not the pupil keys: with the match key a hash gives the personnummer back (shared/kernel/pupil_key.py).
    Role.admin: {
        **dict.fromkeys(set(Resource) - {Resource.pupil_keys}, RW),
        Resource.placement_snapshot: R,
        Resource.schooling: R,
        Resource.report: R,
        Resource.report_rows: R,
        Resource.audit: R,
    },
    Role.caseworker: {
        Resource.child: RW,
        Resource.placement: RW,
        **SCHOOL,
        Resource.examination: RW,
        Resource.alert: RW,  # write: acknowledge
        Resource.report: R,
        Resource.report_rows: R,
    },
    Role.district_manager: {
        Resource.child: RW,
        Resource.placement: RW,
        **SCHOOL,
        Resource.examination: R,
        Resource.alert: RW,
        Resource.report: R,
        Resource.report_rows: R,
    },
    # What schooling needs of a placement (district, start date, whether it means a school
    # change) is on the school records themselves; the placement service (location,
    # caseworker, legal basis) is closed to this role.
    Role.school_coordinator: {**SCHOOL},
    Role.protected_teaching: {**SCHOOL},
    Role.health_staff: {Resource.examination: RW},
    Role.central_analyst: {Resource.report: R},
    # System-to-system: school, health and notify ask placement for a snapshot; the school
    # service's SS 12000 intake asks for the pupil keys.
    Role.service: {Resource.placement_snapshot: R, Resource.pupil_keys: R},
}
# Staff who work with children's records may read and set their own mail address and delivery
# choice (the route checks that the subject is the caller's own unless the caller is an
# administrator). The central analyst reads aggregates only and is never mailed about a child.
for _role in (r for r in Role if r not in (Role.service, Role.admin, Role.central_analyst)):
    GRANTS[_role] = {**GRANTS[_role], Resource.person: RW}

# Which rows of personal data each role sees (reports, webhooks and the audit trail are not
# rows of personal data and are not scoped).
SCOPES: dict[Role, Scope] = {
    Role.admin: Scope.all,
    Role.caseworker: Scope.district,
    Role.district_manager: Scope.district,
    # City-wide: school coordination and the region's health care serve every district.
    Role.school_coordinator: Scope.all,
    Role.protected_teaching: Scope.protected,
    Role.health_staff: Scope.all,
    Role.central_analyst: Scope.all,
    Role.service: Scope.all,
}
UNSCOPED_RESOURCES = frozenset(
    {
        Resource.report,
        Resource.webhook,
        Resource.audit,
        Resource.person,
        Resource.mail_recipient,
        Resource.mail_delivery,
    }
)

PROTECTED_FIELDS: dict[ProtectedField, frozenset[Role]] = {  # and the placement's caseworker: module doc
    ProtectedField.location: frozenset({Role.admin, Role.district_manager}),
    ProtectedField.outside_municipality: frozenset({Role.admin, Role.district_manager}),
    # Only the teaching team may know where a protected child goes to school (Lärteamet).
    ProtectedField.school_unit: frozenset({Role.admin, Role.protected_teaching}),
    ProtectedField.provider: frozenset({Role.admin, Role.district_manager}),  # not city-wide health staff
}

PRIVILEGED: dict[Privileged, frozenset[Role]] = {
    Privileged.name_caseworker: frozenset({Role.admin, Role.district_manager}),
    Privileged.lift_protection: frozenset({Role.admin, Role.district_manager}),
}


@dataclass(frozen=True)
class RouteRule:
    resource: Resource
    action: Action
    # The path parameter naming the record, for the audit trail.
    id_param: str | None = None


def rule(resource: Resource, action: Action, id_param: str | None = None) -> RouteRule:
    return RouteRule(resource, action, id_param)


# (method, route template) -> what the route does. Each service lists its own routes in its
# policy.py (services/<service>/policy.py) and hands them to the skeleton (ServiceSpec.routes);
# these are the routes the skeleton adds to every service. A /v1 route missing from both is
# refused for everyone (and logged): a new route is closed until it is given a line.
COMMON_ROUTES: dict[tuple[str, str], RouteRule] = {
    ("GET", "/v1/audit"): rule(Resource.audit, Action.read),
}
# Route templates under these prefixes, whatever service adds them.
ROUTE_PREFIXES: dict[tuple[str, str], RouteRule] = {
    ("GET", "/v1/reports/"): rule(Resource.report, Action.read),
}


def rule_for(method: str, template: str, routes: Mapping[tuple[str, str], RouteRule] | None = None) -> RouteRule | None:
    """The rule of a route among `routes` (a service's own and the common ones); without them,
    among those of every registered service."""
    method = "GET" if method == "HEAD" else method
    if routes is None:
        from shared.web.registry import all_routes

        routes = all_routes()
    found = routes.get((method, template)) or COMMON_ROUTES.get((method, template))
    if found is not None:
        return found
    for (m, prefix), prefixed in ROUTE_PREFIXES.items():
        if m == method and template.startswith(prefix):
            return prefixed
    return None


def granting_roles(principal: Principal, resource: Resource, action: Action) -> frozenset[Role]:
    return frozenset(r for r in principal.roles if action in GRANTS.get(r, {}).get(resource, frozenset()))


@dataclass
class Access:
    """What the seam decided for this request; routes use it to scope rows and redact fields,
    the audit trail reads it."""

    principal: Principal
    rule: RouteRule | None
    scopes: frozenset[Scope] = frozenset()
    resource_id: str | None = None
    # Refused by policy (403) or out of scope (404): audited as `denied`.
    denied: bool = False
    # Set when a route applied the row scope; a scoped 2xx without it is a route bug (fail closed).
    scoped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    acts: list[str] = field(default_factory=list)

    @property
    def unrestricted(self) -> bool:
        return Scope.all in self.scopes

    @property
    def district(self) -> str | None:
        return self.principal.district if Scope.district in self.scopes else None

    def visible(self, district: str | None, *, protected: bool = False) -> bool:
        self.scoped = True
        if self.unrestricted:
            return True
        if Scope.district in self.scopes and district is not None and district == self.principal.district:
            return True
        return Scope.protected in self.scopes and protected

    def check(
        self, district: str | None, what: str | Problem, *, protected: bool = False, record_id: object = None
    ) -> None:
        """Unless the record is among the caller's rows, the very answer an unknown id gets:
        `what` is that Problem, or the resource name for the usual `not_found`."""
        if record_id is not None:
            self.resource_id = str(record_id)
        if not self.visible(district, protected=protected):
            self.denied = True
            raise what if isinstance(what, Problem) else not_found(what)

    def check_new(self, district: str, field_name: str) -> None:
        """A new record names its district: 403 when it is not the caller's."""
        self.scoped = True
        if self.unrestricted or (Scope.district in self.scopes and district == self.principal.district):
            return
        raise self._another_district(field_name, "This role may only record for its own district.")

    def require_district(self, requested: str, field_name: str = "query.district") -> None:
        """A request that must name a district (a district's row-level list): 403 unless the
        caller sees that district's rows."""
        self.scoped = True
        if self.unrestricted or (Scope.district in self.scopes and requested == self.principal.district):
            return
        raise self._another_district(field_name)

    def list_filter(
        self,
        requested: str | None,
        district_column: Any,
        protected: ColumnElement[bool] | None = None,
        *,
        field_name: str = "query.district",
    ) -> ColumnElement[bool]:
        """The WHERE clause limiting a list to the caller's rows. A `district` filter naming
        another district is 403 (district names are configuration, not secrets)."""
        self.scoped = True
        if requested is not None and not self.unrestricted:
            own = Scope.district in self.scopes and requested == self.principal.district
            if not own and Scope.protected not in self.scopes:
                raise self._another_district(field_name)
        if self.unrestricted:
            return true()
        clauses: list[ColumnElement[bool]] = []
        if Scope.district in self.scopes:
            clauses.append(district_column == self.principal.district)
        if Scope.protected in self.scopes and protected is not None:
            clauses.append(protected)
        return or_(*clauses) if clauses else false()

    def _another_district(self, field_name: str, detail: str = "This role sees its own district only.") -> Problem:
        self.denied = True
        return Problem(403, "forbidden-district", "Another district", detail, field=field_name)

    def privileged(self, change: Privileged, field_name: str) -> None:
        """A privileged change: 403 unless a role may make it; audited as `write:<change>`."""
        self.acts.append(change.value)
        if not self.principal.has(*PRIVILEGED[change]):
            self.denied = True
            detail = f"Only {' or '.join(sorted(PRIVILEGED[change]))} may make this change."
            raise Problem(403, "forbidden-change", "Not this role's change", detail, field=field_name)

    def sees(self, protected_field: ProtectedField, *, responsible: str | None = None) -> bool:
        """Whether a protected child's field is answered to this caller (else null)."""
        if self.principal.has(*PROTECTED_FIELDS[protected_field]):
            return True
        return (
            protected_field in (ProtectedField.location, ProtectedField.outside_municipality)
            and responsible is not None
            and responsible == self.principal.subject
            and self.principal.has(Role.caseworker)
        )


def _scopes(roles: Iterable[Role]) -> frozenset[Scope]:
    return frozenset(SCOPES[r] for r in roles)


async def authorize(request: Request, principal: Annotated[Principal, Depends(authenticate)]) -> Access:
    """The policy check every /v1 route runs after authentication."""
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or request.url.path
    rule = rule_for(request.method, template, runtime(request.app).routes)
    access = Access(principal=principal, rule=rule)
    request.state.access = access
    if rule is None:
        log.error("route has no access rule; refused", extra={"method": request.method, "route": template})
        access.denied = True
        raise Problem(403, "forbidden", "Forbidden", "This operation is not open to any role.")
    value = request.path_params.get(rule.id_param) if rule.id_param else None
    if value is not None and has_control(str(value)):
        # No record is named so; audited with the characters escaped (text cannot hold NUL).
        access.resource_id = ascii(str(value))[1:-1][:100]
        raise not_found(rule.resource.value)
    access.resource_id = str(value) if value is not None else None
    roles = granting_roles(principal, rule.resource, rule.action)
    if not roles:
        access.denied = True
        raise Problem(403, "forbidden", "Forbidden", "This role may not do that.")
    access.scopes = frozenset({Scope.all}) if rule.resource in UNSCOPED_RESOURCES else _scopes(roles)
    if access.scopes == {Scope.district}:
        districts: list[str] = runtime(request.app).settings.districts
        if principal.district not in districts:
            access.denied = True
            raise Problem(
                403,
                "forbidden",
                "No district",
                "This role sees its own district's records, and the token names no configured district.",
            )
    return access


AccessDep = Annotated[Access, Depends(authorize)]


def v1_router() -> APIRouter:
    """Every API route hangs off this router, so none can bypass authentication or this access
    policy, and each request is audited (shared/web/audit.py)."""
    return APIRouter(prefix="/v1", dependencies=[Depends(authorize)])
