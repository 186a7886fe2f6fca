"""shared.dmss.address: every form a client may send, malformed ones, relative references."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from shared.dmss.address import (
    DmssAddress,
    Item,
    decode,
    is_relative,
    normalise_address,
    parse_address,
    parse_target,
    resolve_reference,
    resolve_relative,
)
from shared.platform.errors import BadRequest

ID = "3f1c2b9e-0d5a-4c1e-9b7a-6f2e8d4c1a00"


def encode(value: str, times: int = 1) -> str:
    for _ in range(times):
        value = quote(value, safe="")
    return value


# --- accepted forms ---------------------------------------------------------------------------------------

CANONICAL = [
    f"dmss://DS/${ID}",
    f"dmss://DS/${ID}.attr",
    f"dmss://DS/${ID}.list[0].attr",
    f"dmss://DS/${ID}.study.jobs[12].applicationInput",
    "dmss://DS/Root/Sub/Entity",
    "dmss://DS/Root",
    "dmss://DS/Root/Sub/Entity.attr[3]",
    f"dmss://DS/${ID}.jobs(name=first)",
    f"dmss://DS/${ID}.jobs(name=first,type=dmss).status",
    "dmss://My-DS_2/root_pkg/sub-pkg/entity_1",
    f"dmss://DS/${ID}/Child",
    "dmss://DS/$1",
]


@pytest.mark.parametrize("canonical", CANONICAL)
@pytest.mark.parametrize(
    "variant",
    [
        "plain",
        "no-scheme",
        "encoded",
        "double-encoded",
        "triple-encoded",
        "encoded-no-scheme",
        "leading-slash",
        "merged-slashes",
        "upper-scheme",
        "quoted",
        "whitespace",
        "trailing-slash",
        "partly-encoded",
    ],
)
def test_every_form_normalises_to_the_canonical_address(canonical, variant):
    bare = canonical[len("dmss://") :]
    raw = {
        "plain": canonical,
        "no-scheme": bare,
        "encoded": encode(canonical),
        "double-encoded": encode(canonical, 2),
        "triple-encoded": encode(canonical, 3),
        "encoded-no-scheme": encode(bare),
        "leading-slash": "/" + canonical,
        "merged-slashes": "dmss:/" + bare,  # a proxy merged the '//' of the scheme
        "upper-scheme": "DMSS://" + bare,
        "quoted": f'"{canonical}"',
        "whitespace": f"  {canonical}\n",
        "trailing-slash": canonical + "/",
        "partly-encoded": canonical.replace("$", "%24").replace("[", "%5B").replace("]", "%5D"),
    }[variant]
    assert normalise_address(raw) == canonical


def test_the_dm_job_example_encoding():
    assert normalise_address("dmss%3A%2F%2FDS%2F%24id") == "dmss://DS/$id"
    assert normalise_address("dmss%253A%252F%252FDS%252F%2524id") == "dmss://DS/$id"


def test_parsed_structure():
    address = parse_address(f"DS/${ID}.list[2](name=a,b=c).x")
    assert address.data_source == "DS"
    assert address.items == (
        Item("id", ID),
        Item("attr", "list"),
        Item("index", 2),
        Item("query", (("name", "a"), ("b", "c"))),
        Item("attr", "x"),
    )
    assert address.path == f"${ID}.list[2](name=a,b=c).x"
    assert str(address.document) == f"dmss://DS/${ID}"
    assert str(parse_address("DS/Root/Sub/Entity.attr[0]").document) == "dmss://DS/Root/Sub/Entity"


def test_decode_stops_when_nothing_is_encoded_and_keeps_plus():
    assert decode("a+b") == "a+b"
    assert decode("dmss%3A%2F%2FDS") == "dmss://DS"
    assert decode(encode("dmss://DS", 4)) == "dmss://DS"


def test_parse_target_allows_a_bare_data_source():
    assert str(parse_target("dmss://MSDS")) == "dmss://MSDS"
    assert parse_target("MSDS").items == ()
    assert str(parse_target(encode("dmss://MSDS/$1.results"))) == "dmss://MSDS/$1.results"


def test_default_data_source_for_id_only_addresses():
    assert str(parse_address("$abc.x", default_data_source="DS")) == "dmss://DS/$abc.x"
    with pytest.raises(BadRequest, match="no data source"):
        parse_address("$abc.x")


# --- malformed -------------------------------------------------------------------------------------------

MALFORMED = [
    ("", "empty"),
    ("   ", "empty"),
    ("dmss://", "no data source"),
    ("dmss://DS", "no path"),
    ("dmss://DS/", "no path"),
    ("DS", "no path"),
    ("http://DS/$id", "unknown protocol"),
    ("dmss://DS/$", "document id"),
    ("dmss://DS/$id.", "attribute name"),
    ("dmss://DS/$id..a", "attribute name"),
    ("dmss://DS/$id.1abc", "attribute name"),
    ("dmss://DS/$id.list[", "list index"),
    ("dmss://DS/$id.list[a]", "list index"),
    ("dmss://DS/$id.list[-1]", "list index"),
    ("dmss://DS/$id.list[0", "list index"),
    ("dmss://DS/$id.list(name=a", "unclosed"),
    ("dmss://DS/$id.list()", "empty query"),
    ("dmss://DS/$id.list(name)", "key=value"),
    ("dmss://DS/$id.list(=a)", "key=value"),
    ("dmss://DS/$id.list(name=)", "key=value"),
    ("dmss://DS/Root//Sub", "'/'"),
    ("dmss://DS/Root/Sub/", None),  # a trailing '/' is dropped: valid
    ("dmss://DS/$id/", None),
    ("dmss://DS/Ro ot", "whitespace"),
    ("dmss://DS/$id\n.x", "whitespace"),
    ("dmss://DS/$id.a%", "'%'"),
    ("dmss://DS/$id.a%zz", "'%'"),
    ("dmss%3A%2F%2FDS%2F%FF", "UTF-8"),
    ("dmss://D S/$id", "whitespace"),
    ("dmss://D.S/$id", "data source name"),
    ("dmss://DS/.attr", "must start"),
    ("dmss://DS/[0]", "must start"),
    ("dmss://DS/~.x", "relative"),
    ("~.~.sce", "relative"),
    ("^.sce", "relative"),
    ("dmss://DS/$id.~", "relative"),
    ("dmss://DS/$id.a#b", "unexpected"),
    ("dmss://DS/$id.a[0]/Name", "cannot follow"),
    ("dmss://DS/$id?x=1", "unexpected"),
    ("x" * 5000, "longer than"),
]


@pytest.mark.parametrize("raw, why", MALFORMED)
def test_malformed_addresses_are_400_with_a_clear_message(raw, why):
    if why is None:
        parse_address(raw)
        return
    with pytest.raises(BadRequest) as info:
        parse_address(raw)
    error = info.value
    assert error.status == 400
    assert error.message.startswith("Invalid DMSS address")
    assert why in error.message
    assert error.body()["type"] == "BadRequestException"


def test_not_a_string():
    with pytest.raises(BadRequest):
        parse_address(None)  # type: ignore[arg-type]


def test_address_helpers():
    address = parse_address("DS/$doc")
    assert isinstance(address, DmssAddress)
    assert str(address.attribute("applicationInput")) == "dmss://DS/$doc.applicationInput"
    assert str(address.child(Item("attr", "runs"), Item("index", 3))) == "dmss://DS/$doc.runs[3]"
    assert is_relative("~.x") and is_relative("^") and not is_relative("dmss://DS/$1")


# --- relative references ----------------------------------------------------------------------------------


def test_dm_job_md_example():
    # a reference at $doc.study.jobs[0].applicationInput with address ~.~.~.sce resolves to $doc.sce
    assert resolve_reference("dmss://DS/$doc.study.jobs[0]", "~.~.~.sce") == "dmss://DS/$doc.sce"
    assert resolve_relative("dmss://DS/$doc.study.jobs[0].applicationInput", "~.~.~.sce") == "dmss://DS/$doc.sce"


@pytest.mark.parametrize(
    "job, reference, expected",
    [
        # one ~: the job itself (the reference sits in job.applicationInput)
        ("DS/$doc", "~.input", "dmss://DS/$doc.input"),
        ("DS/$doc", "~", "dmss://DS/$doc"),
        # a list element pops its index and its attribute
        ("DS/$doc.jobs[3]", "~.~.sce", "dmss://DS/$doc.sce"),
        ("DS/$doc.jobs[3]", "~.~", "dmss://DS/$doc"),
        ("DS/$doc.a.b.c", "~.~.x", "dmss://DS/$doc.a.b.x"),
        ("DS/$doc.a.b.c", "~.~.~.~.x", "dmss://DS/$doc.x"),
        ("DS/$doc.a.list[0].b.list[1]", "~.~.~.~.y", "dmss://DS/$doc.a.y"),
        # continuing with indexes, queries and package names
        ("DS/$doc.jobs[3]", "~.~.inputs[2].value", "dmss://DS/$doc.inputs[2].value"),
        ("DS/$doc.jobs[3]", "~.~.inputs(name=x)", "dmss://DS/$doc.inputs(name=x)"),
        ("DS/$doc.jobs[3]", "~.~.jobs[1]", "dmss://DS/$doc.jobs[1]"),
        ("DS/$doc.a.jobs[3]", "~.~[1]", "dmss://DS/$doc.a[1]"),
        ("DS/$doc.jobs(name=a)", "~.~.sce", "dmss://DS/$doc.sce"),
        # package paths: going up from an entity lands on its package
        ("DS/Root/Sub/Entity", "~.sce", "dmss://DS/Root/Sub/Entity.sce"),
        ("DS/Root/Sub/Entity", "~.~.x", "dmss://DS/Root/Sub.x"),
        ("DS/Root/Sub/Entity", "~.~/Other", "dmss://DS/Root/Sub/Other"),
        # ^ is the current document
        ("DS/$doc.study.jobs[0]", "^.sce", "dmss://DS/$doc.sce"),
        ("DS/$doc.study.jobs[0]", "^", "dmss://DS/$doc"),
        ("DS/$doc.study.jobs[0]", "^.list[1].x", "dmss://DS/$doc.list[1].x"),
        ("DS/Root/Sub/Entity.runs[2]", "^.input", "dmss://DS/Root/Sub/Entity.input"),
        # $id: the same data source; absolute in any form
        ("DS/$doc.jobs[0]", "$other.input", "dmss://DS/$other.input"),
        ("DS/$doc", "dmss://OTHER/$x.y", "dmss://OTHER/$x.y"),
        ("DS/$doc", "OTHER/Root/Input", "dmss://OTHER/Root/Input"),
        ("DS/$doc", encode("dmss://OTHER/$x"), "dmss://OTHER/$x"),
        ("DS/$doc.jobs[0]", encode("~.~.sce"), "dmss://DS/$doc.sce"),
    ],
)
def test_resolve_reference(job, reference, expected):
    assert resolve_reference(job, reference) == expected


def test_runs_of_a_recurring_job():
    # a run copied to $rec.schedule.runs[i]: its reference sits at $rec.schedule.runs[i].applicationInput
    assert resolve_reference("DS/$rec.schedule.runs[4]", "~.~.~.sce") == "dmss://DS/$rec.sce"
    assert resolve_reference("DS/$rec.schedule.runs[4]", "~.~.sce") == "dmss://DS/$rec.schedule.sce"
    # the template itself sits at $rec.applicationInput: from there ~.~.sce is $rec.sce
    assert resolve_relative("DS/$rec.applicationInput.applicationInput", "~.~.sce") == "dmss://DS/$rec.sce"


@pytest.mark.parametrize(
    "job, reference, why",
    [
        ("DS/$doc", "~.~.x", "above the document root"),
        ("DS/$doc.jobs[0]", "~.~.~.x", "above the document root"),
        ("DS/$doc.study.jobs[0]", "~.~.~.~.sce", "above the document root"),
        ("DS/Root/Entity", "~.~.~.x", "above the document root"),
        ("DS/$doc", "~~.x", "separated"),
        ("DS/$doc", "~x", "unexpected"),
        ("DS/$doc", "~.x.~", "relative"),
        ("DS/$doc", "", "empty"),
        ("DS/$doc", "^^", "relative"),
        ("DS/$doc", "~.[0", "attribute name"),
        ("DS/$doc", "~[0", "list index"),
    ],
)
def test_bad_references(job, reference, why):
    with pytest.raises(BadRequest) as info:
        resolve_reference(job, reference)
    assert why in info.value.message


def test_too_many_tildes_message_names_the_position():
    with pytest.raises(BadRequest) as info:
        resolve_reference("DS/$doc.jobs[0]", "~.~.~.~.x")
    assert "dmss://DS/$doc.jobs[0].applicationInput" in info.value.message


def test_other_attribute():
    assert resolve_reference("DS/$doc", "~.b", attribute="outputTarget") == "dmss://DS/$doc.b"
