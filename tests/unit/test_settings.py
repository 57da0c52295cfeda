"""settings.py: the plain-subset reader (no configobj, for the agent's start-up cost) never
disagrees with configobj, the authority; defaults come from the configspec alone."""
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from conftest import ROOT
from ganesha_ha import settings
from ganesha_ha.errors import ConfigError

SPEC = settings._parse_spec(settings._spec_lines())
KEYS = sorted({k for sec in SPEC.values() for k in sec}) + ["bogus"]
SECTIONS = [f"[{s}]" for s in SPEC] + ["[bogus]", "[[ganesha]]", "[ ganesha ]", "[log] # c", "[log"]
VALUES = ["10", "0.5", "-1", "1e3", "300.5", "007", ".5", "1.", "nan", "inf", "abc", "", "0", "1",
          "16385", "yes", "No", "TRUE", "on", "off", "2", '"quoted"', "'single'", '"a, b"', "a, b",
          "a # c", '"a" # c', "%(x)s", "$x", '"$x"', "unix:path=/run/x", '"""', '"a"b"', "'it''s'",
          "3, 4", '"3, 4"', "a,", '""', "1_000", "+5", " 12 ", "\t7"]
NUMBERS = ["10", "0.5", "300", "-1", "12.25", "1000", "16384", "3600", "0", "'30'", '"10"', "1e1"]
BOOLEANS = ["yes", "no", "True", "FALSE", "on", "Off", "1", "0", '"yes"', "maybe"]
STRINGS = ["/var/lib/nfs", "unix:path=/run/dbus/system_bus_socket", '"3, 4"', "4", "'TCP, UDP'",
           "v4recov", '""', "", "a b", '"a # b"', "ünïcode"]


def authoritative(text: str) -> dict | None:
    """configobj's reading of `text` as {section: {key: value}}, or None when it refuses it."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf", encoding="utf-8", delete=False) as fh:
        fh.write(text)
    try:
        s = settings._load_configobj(Path(fh.name), "(test)")
    except ConfigError:
        return None
    finally:
        os.unlink(fh.name)
    return {"ganesha": s.ganesha, "instance": s.instance, "knfsd": s.knfsd, "node": s.node, "nsm": s.nsm,
            "registry": s.registry, "log": s.log}


line = st.one_of(
    st.sampled_from(SECTIONS),
    st.sampled_from(["", "# a comment", "   # indented", "junk without equals"]),
    st.builds(lambda k, sep, v: f"{k}{sep}{v}", st.sampled_from(KEYS), st.sampled_from([" = ", "=", "  =\t"]),
              st.one_of(st.sampled_from(VALUES), st.text(max_size=8))),
)


@st.composite
def mostly_valid(draw):
    """Sections of the spec with their own keys, so that many files are valid."""
    out = []
    for sec in draw(st.lists(st.sampled_from(sorted(SPEC)), max_size=5, unique=True)):
        out.append(f"[{sec}]")
        for key in draw(st.lists(st.sampled_from(sorted(SPEC[sec])), max_size=3, unique=True)):
            fitting = {"integer": NUMBERS, "float": NUMBERS, "boolean": BOOLEANS}.get(SPEC[sec][key][0], STRINGS)
            out.append(f"{key} = {draw(st.sampled_from(fitting) | st.sampled_from(VALUES))}")
    return out


@hsettings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(line, max_size=12), mostly_valid()))
def test_plain_reader_never_disagrees_with_configobj(lines):
    text = "\n".join(lines) + "\n"
    simple = settings._read_simple(text, SPEC)
    if simple is not None:
        assert authoritative(text) == simple


def test_defaults_come_from_the_configspec():
    assert SPEC is not None
    assert settings._read_simple("", SPEC) == authoritative("")
    assert settings.load_settings(None).source in ("(defaults)", str(settings.DEFAULT_CONFIG))


@pytest.mark.parametrize("text", [
    "[ganesha]\nbus_address = unix:path=/run/x/bus.sock\nprotocols = \"4\"\ndbus_timeout = 60\n"
    "recovery_root = /tmp/r\n[node]\nruntime_dir = /tmp/run\n",
    "[registry]\nlock_timeout = 0.5\nid_block = 10\n[log]\nsyslog = on\n",
])
def test_plain_files_skip_configobj_and_read_the_same(text):
    simple = settings._read_simple(text, SPEC)
    assert simple is not None and simple == authoritative(text)


def test_shipped_example_uncommented_is_plain_and_valid():
    """Every setting in conf/ganesha-ha.conf, uncommented, is a valid file of the plain subset."""
    text = (ROOT / "conf" / "ganesha-ha.conf").read_text()
    lines = [ln[2:] if ln.startswith("# ") and "=" in ln else ln for ln in text.splitlines()]
    uncommented = "\n".join(lines) + "\n"
    assert authoritative(uncommented) is not None
    assert settings._read_simple(uncommented, SPEC) == authoritative(uncommented)


def test_errors_still_name_the_line(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[ganesha]\n\ndbus_timeout = 0.1\n")
    with pytest.raises(ConfigError, match=r"\(line 3\): ganesha/dbus_timeout"):
        settings.load_settings(conf)
    conf.write_text("[knfsd]\nexportfs_path = /x\n")
    with pytest.raises(ConfigError, match=r"\(line 2\): unknown setting 'knfsd/exportfs_path'"):
        settings.load_settings(conf)


@pytest.mark.parametrize("text,said", [
    ("[instance]\ngrace_period = 500\n", 'instance/grace_period: the value "500" is too big (it must be at most 270)'),
    ("[ganesha]\ndbus_timeout = 0.1\n", 'ganesha/dbus_timeout: the value "0.1" is too small (it must be at least 0.5)'),
    ("[ganesha]\ndbus_timeout = abc\n", 'ganesha/dbus_timeout: the value "abc" is of the wrong type.'),
])
def test_a_value_out_of_range_names_the_range(tmp_path, text, said):
    """Found by a try-out: validate says only "the value "500" is too big."."""
    conf = tmp_path / "c.conf"
    conf.write_text(text)
    with pytest.raises(ConfigError) as err:
        settings.load_settings(conf)
    assert str(err.value) == f"{conf} (line 2): {said}"
