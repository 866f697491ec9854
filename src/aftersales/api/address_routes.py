"""The shops' return-address books (M1, M5): the shop's own staff for its shop, the platform for any shop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, StrictBool, StringConstraints

from aftersales.service import return_addresses as service

from .app import CtxDep, IdempotencyKey, IfMatch, Who
from .routes import PathId
from .schemas import NO_NUL, Problem, Strict

router = APIRouter(tags=["return addresses"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 422: P}
#: The fields are checked by the service (M5: lengths, printable text, a phone number); this only bounds the body.
Field = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]


class AddressIn(Strict):
    #: What the shop calls it ("Warehouse Hangzhou"), up to 60 characters.
    label: Field | None = None
    #: Who receives returns there, up to 80 characters.
    contact_name: Field | None = None
    #: Digits with spaces and + - ( ) . /, at least 5 digits, up to 32 characters.
    phone: Field | None = None
    #: The address lines as a parcel label reads them, up to 500 characters (required).
    address: Field
    #: Make it the shop's default (the shop's first address always is).
    is_default: StrictBool = False


class AddressPatch(Strict):
    """Only the fields sent change."""

    label: Field | None = None
    contact_name: Field | None = None
    phone: Field | None = None
    address: Field | None = None


class AddressOut(BaseModel):
    id: str
    merchant_id: str
    label: str
    contact_name: str
    phone: str
    address: str
    #: The whole address as a parcel label reads (contact and phone, then the address lines).
    text: str
    is_default: bool
    archived: bool
    created_at: str
    updated_at: str
    archived_at: str | None
    version: int


class AddressPage(BaseModel):
    items: list[AddressOut]
    next_cursor: str | None


BASE = "/v1/merchants/{merchant_id}/return-addresses"


@router.get(BASE, response_model=AddressPage, responses=ERRORS)
def list_addresses(merchant_id: PathId, ctx: CtxDep, who: Who,
                   archived: Annotated[bool, Query(description="Include archived addresses.")] = False) -> Any:
    """The shop's return addresses, the default first (M1), then oldest first; at most 50 are active at a time."""
    return service.list_addresses(ctx, who, merchant_id, archived=archived)


@router.post(BASE, status_code=201, response_model=AddressOut, responses=ERRORS)
def create_address(merchant_id: PathId, body: AddressIn, ctx: CtxDep, who: Who,
                   idempotency_key: IdempotencyKey = None) -> Any:
    """Add a return address (M5). The shop's first address, or one sent with `is_default: true`, becomes the
    default (M1: where automatically approved returns go)."""
    return service.create_address(ctx, who, merchant_id, body.model_dump())


def etag(version: int) -> str:
    """The ETag of a version of an address: what `If-Match` takes back (api/app.py ``get_if_match``)."""
    return f'"{version}"'


@router.get(BASE + "/{address_id}", response_model=AddressOut, responses=ERRORS)
def get_address(merchant_id: PathId, address_id: PathId, response: Response, ctx: CtxDep, who: Who) -> Any:
    """One return address of the shop, archived ones included (another shop's: 404). Its `ETag` is its `version`
    in quotes (`"3"`): send it back as `If-Match` on `PATCH` or the address's actions."""
    found = service.get_address(ctx, who, merchant_id, address_id)
    response.headers["etag"] = etag(found["version"])
    return found


@router.patch(BASE + "/{address_id}", response_model=AddressOut, responses=ERRORS)
def update_address(merchant_id: PathId, address_id: PathId, body: AddressPatch, ctx: CtxDep, who: Who,
                   if_match: IfMatch) -> Any:
    """Change an active address (only the fields sent). Returns already approved to it keep the copy of the address
    they were approved with (M5). Send `If-Match: <version>` to change it only as you last read it (409 otherwise)."""
    return service.update_address(ctx, who, merchant_id, address_id, body.model_dump(exclude_unset=True),
                                  if_match=if_match)


@router.post(BASE + "/{address_id}/default", response_model=AddressOut, responses=ERRORS)
def make_default(merchant_id: PathId, address_id: PathId, ctx: CtxDep, who: Who, if_match: IfMatch,
                 idempotency_key: IdempotencyKey = None) -> Any:
    """Make this active address the shop's default (M1); the previous default stays as an ordinary address."""
    return service.set_default(ctx, who, merchant_id, address_id, if_match=if_match)


@router.post(BASE + "/{address_id}/archive", response_model=AddressOut, responses=ERRORS)
def archive_address(merchant_id: PathId, address_id: PathId, ctx: CtxDep, who: Who, if_match: IfMatch,
                    idempotency_key: IdempotencyKey = None) -> Any:
    """Archive an address: it is no longer offered for new returns. The default is refused (409, M1) while the
    shop has another address to make the default first."""
    return service.archive_address(ctx, who, merchant_id, address_id, if_match=if_match)
