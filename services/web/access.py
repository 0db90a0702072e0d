"""Which pages a person gets: each page is open to the roles the access policy
(shared/policy.py) grants the API reads the page is made of, so a page is never offered to
someone whose every call would be refused. The services still decide every call."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.web.auth import Principal
from shared.web.policy import Action, Resource, granting_roles


class Page(StrEnum):
    inbox = "inbox"
    child = "child"
    search = "search"
    followup = "followup"
    settings = "settings"


# page -> (resource, action) pairs that must all be granted.
NEEDS: dict[Page, tuple[tuple[Resource, Action], ...]] = {
    Page.inbox: ((Resource.alert, Action.read),),
    Page.child: ((Resource.child, Action.read), (Resource.placement, Action.read)),
    Page.search: ((Resource.child, Action.write), (Resource.placement, Action.write)),
    Page.followup: ((Resource.report, Action.read),),
    Page.settings: (),
}
PATHS: dict[Page, str] = {
    Page.inbox: "/",
    Page.search: "/search",
    Page.followup: "/followup",
    Page.settings: "/settings",
}


@dataclass(frozen=True)
class NavItem:
    page: Page
    path: str


def may_see(principal: Principal, page: Page) -> bool:
    return all(granting_roles(principal, resource, action) for resource, action in NEEDS[page])


def nav_items(principal: Principal) -> list[NavItem]:
    return [NavItem(page, path) for page, path in PATHS.items() if may_see(principal, page)]


def home(principal: Principal) -> str:
    """Where a person lands after signing in: the first page they may see."""
    items = nav_items(principal)
    return items[0].path if items else "/settings"


def row_level(principal: Principal) -> bool:
    """Whether the person reads a district's own rows (the waiting list) or aggregates only."""
    return bool(granting_roles(principal, Resource.report_rows, Action.read)) and principal.district is not None
