"""The district's units (承办单位) and its jurisdiction gazetteer (属地: place name -> street office
and community), shared by routing (who handles a ticket), supervision (the street of a warning)
and deputy liaison (a deputy's area). The data is one file, kit data beside the calendar and the SLA policy:
``hotline/data/directory.json`` (:data:`DIRECTORY_FILE`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.settings import REPO_ROOT
from hotline.v1 import events_pb2, ticket_pb2

DIRECTORY_FILE = REPO_ROOT / "hotline" / "data" / "directory.json"


@dataclass(frozen=True)
class Place:
    """A name of the gazetteer (or an alias of one) and where it lies."""

    name: str
    street: str
    community: str = ""
    kind: str = ""  # road | compound (小区) | landmark | area | street | community


@dataclass(frozen=True)
class Location:
    street: str | None = None
    community: str | None = None


class Directory:
    """Units (承办单位) and the jurisdiction gazetteer (place name -> street office and community).

    Street and community unit names are places of their own. A name inside a longer name that
    matched (石门坎 in 石门坎东路, 瑞金路 in 瑞金路街道) does not count: the longest name wins.
    """

    def __init__(self, units: Sequence[Mapping[str, Any]], gazetteer: Sequence[Mapping[str, Any]] = ()) -> None:
        self.units = {
            u["unit_id"]: events_pb2.Unit(
                unit_id=u["unit_id"], name=u["name"], unit_type=events_pb2.UnitType.Value(u["unit_type"])
            )
            for u in units
        }
        self.parents: dict[str, str] = {}  # community -> its street
        places: list[Place] = []
        for u in units:
            unit_id, unit_type = u["unit_id"], self.units[u["unit_id"]].unit_type
            if unit_type == events_pb2.UNIT_TYPE_COMMUNITY:
                parent = u.get("parent", "")
                if self._type(parent) != events_pb2.UNIT_TYPE_STREET:
                    raise ValueError(f"community {unit_id} has no street as its parent ({parent!r})")
                self.parents[unit_id] = parent
                places.append(Place(u["name"], parent, unit_id, "community"))
            elif unit_type == events_pb2.UNIT_TYPE_STREET:
                places.append(Place(u["name"], unit_id, "", "street"))
        for entry in gazetteer:
            community = entry.get("community", "")
            street = entry.get("street") or self.parents.get(community, "")
            if self._type(street) != events_pb2.UNIT_TYPE_STREET:
                raise ValueError(f"place {entry['name']} lies in no known street ({street!r})")
            if community and self.parents.get(community) != street:
                raise ValueError(f"place {entry['name']}: community {community} is not in street {street}")
            for name in (entry["name"], *entry.get("aliases", ())):
                places.append(Place(name, street, community, entry.get("kind", "")))
        where: dict[str, Place] = {}
        for place in places:
            seen = where.setdefault(place.name, place)
            if (seen.street, seen.community) != (place.street, place.community):
                raise ValueError(f"place name {place.name} lies in two places")
        # longest names first, so "石门坎东路" wins over "石门坎"
        self.places = sorted(where.values(), key=lambda p: -len(p.name))
        self._by_first: dict[str, list[tuple[int, Place]]] = {}  # first character -> (rank, place)
        for rank, place in enumerate(self.places):
            self._by_first.setdefault(place.name[0], []).append((rank, place))

    @classmethod
    def from_file(cls, path: Path) -> Directory:
        doc = json.loads(path.read_text("utf-8"))
        return cls(doc["units"], doc.get("gazetteer", []))

    def _type(self, unit_id: str) -> int:
        unit = self.units.get(unit_id)
        return unit.unit_type if unit else events_pb2.UNIT_TYPE_UNSPECIFIED

    def matches(self, text: str) -> list[Place]:
        """The places named in ``text``, longest first; a name inside a longer match is skipped."""
        taken: list[tuple[int, int]] = []
        found: list[Place] = []
        if not text:
            return found
        named = sorted(c for ch in set(text) for c in self._by_first.get(ch, ()) if c[1].name in text)
        for _, place in named:
            start = text.find(place.name)
            while start != -1:
                end = start + len(place.name)
                if all(end <= a or start >= b for a, b in taken):
                    taken.append((start, end))
                    found.append(place)
                    break
                start = text.find(place.name, start + 1)
        return found

    def locate(self, ticket: ticket_pb2.Ticket) -> Location:
        """Street and community of the ticket's place: the street field first, then the address.

        The street is the one of the longest name; the community is taken from the longest name
        that names one inside that street (a compound, a community, a short road)."""
        street: str | None = None
        community: str | None = None
        for text in (ticket.street, ticket.address):
            for place in self.matches(text):
                street = street or place.street
                if community is None and place.community and place.street == street:
                    community = place.community
        return Location(street, community)

    def street_of(self, ticket: ticket_pb2.Ticket) -> str | None:
        return self.locate(ticket).street

    def community_of(self, ticket: ticket_pb2.Ticket) -> str | None:
        return self.locate(ticket).community
