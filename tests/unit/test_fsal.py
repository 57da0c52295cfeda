"""fsal.py and fsal_schema.py: an export's FSAL as a typed record: validation against each FSAL's
schema, the CLI's syntax, round trips, secrets, and what reaches a config file."""
from __future__ import annotations

import pytest
from hypothesis import assume, event, given, settings, strategies as st

from ganesha_ha.backends.ganesha_conf import check_renderable, render_export
from ganesha_ha.backends.ganesha_conf_parse import export_from_block, fsal_from_block, parse_config
from ganesha_ha.errors import ConflictError, ValidationError
from ganesha_ha.fsal import Fsal, check_module_agreement, parse_spec
from ganesha_ha.fsal_schema import (BOOL, IP, MODE, PATH, REDACTED, SCHEMAS, STR, TOKEN, UINT,
                                    normalize_value, schema_of)
from ganesha_ha.model import Export, GaneshaOptions, KnfsdOptions

from strategies import nasty_text


def export_with(fsal: Fsal, path: str | None = None) -> Export:
    return Export(path=path or ("/d" if fsal.remote else "d"), export_id=3, knfsd=KnfsdOptions("3"),
                  pseudo="/d", clients=("*",), ganesha=GaneshaOptions(fsal))


def with_ha_defaults(fsal: Fsal) -> Fsal:
    """The record as a rendered block says it: ganesha-ha's own defaults written out."""
    given = dict(fsal.options)
    extra = tuple((o.key, o.ha_default) for o in fsal.schema.options
                  if o.ha_default is not None and o.key not in given)
    return Fsal(fsal.name, fsal.options + extra, with_ha_defaults(fsal.stacked) if fsal.stacked else None)


# ---- the schema tables ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_is_consistent(name):
    """Keys are unique and never `name`; Ganesha's default of every option is a valid value of
    its own type; a required option has no default; the module file follows Ganesha's rule."""
    sch = SCHEMAS[name]
    keys = [o.key.lower() for o in sch.options]
    assert len(keys) == len(set(keys)) and "name" not in keys
    for opt in sch.options:
        for value in (opt.default, opt.ha_default):
            if value is not None:
                assert normalize_value(name, opt, value) == value, (opt.key, value)
        assert not (opt.required and opt.default is not None)
        assert opt.kind in (BOOL, UINT, TOKEN, IP, STR, PATH, MODE)
    assert sch.library == f"libfsal{name.lower()}.so"
    assert sch.remote == (name in ("CEPH", "GLUSTER", "RGW", "PROXY_V4", "MEM"))


# ---- validation -------------------------------------------------------------------------

@pytest.mark.parametrize("text,words", [
    ("NOPE", ["not a supported FSAL", "VFS", "MEM", "PROXY_V4", "NULL"]),
    ("MEM(Bogus_Key=1)", ["no option 'Bogus_Key'", "Async_Delay", "Inode_Size"]),
    ("MEM(Async_Delay=5000)", ["Async_Delay", "0 to 1000", "5000"]),
    ("MEM(Async_Type=sometimes)", ["inline, fixed, random, random_or_inline"]),
    ("MEM(Async_Delay=-1)", ["whole number"]), ("MEM(Async_Delay=1e3)", ["whole number"]),
    ("VFS(fsid_type=Bogus)", ["None, One64"]), ("VFS(umask=0999)", ["octal"]),
    ("VFS(cansettime=maybe)", ["true or false"]),
    ("PROXY_V4", ["needs Srv_Addr"]), ("PROXY_V4(Srv_Addr=backend.example)", ["IP address"]),
    ("PROXY_V4(Srv_Addr=0.0.0.0)", ["real address"]),
    ("PROXY_V4(Srv_Addr=127.0.0.1,RPC_Client_Timeout=0)", ["1 to 240"]),
    ("GLUSTER(volume=v)", ["needs hostname"]), ("RGW(user_id=u)", ["needs access_key_id, secret_access_key"]),
    ("GLUSTER(volume=v,hostname=h,volpath=rel)", ["absolute path"]),
    ("NULL", ["sits on another FSAL", "NULL(VFS)"]), ("VFS(MEM)", ["does not stack"]),
    ("NULL(NULL(NULL(NULL(VFS))))", ["stacked"]),
    ("MEM(Async_Delay=1,async_delay=2)", ["given twice"]),
    ('MEM(Async_Type="a\\\\b")', ["backslash"]),
    ("MEM(Name=x)", ["not an option name"]), ("MEM(Inode_Size=1", ["',' or ')'"]),
    ("MEM(Inode_Size=1)x", ["unexpected text"]), ("(x=1)", ["name is missing"]),
    ("MEM(Inode_Size=@/x)", []),
    # an option written without its value is not taken for an FSAL below a non-stacking one
    ("MEM(Async_Type)", ["Async_Type needs a value", "Async_Type=VALUE"]),
    ("PROXY_V4(Srv_Addr=127.0.0.1,NFS_Port)", ["NFS_Port needs a value"]),
])
def test_bad_fsals_are_refused_naming_the_problem(text, words, tmp_path):
    with pytest.raises(ValidationError) as err:
        parse_spec(text, read_file=lambda p: (_ for _ in ()).throw(ValidationError("fsal option", f"cannot read {p}")))
    for word in words:
        assert word in str(err.value), str(err.value)


def test_names_keys_and_tokens_are_stored_in_ganeshas_spelling_and_order():
    a = parse_spec("mem(async_type=FIXED, inode_size=65536)")
    b = Fsal("MEM", (("Inode_Size", "65536"), ("Async_Type", "fixed")))
    assert a == b and a.options == (("Async_Type", "fixed"), ("Inode_Size", "65536"))
    assert parse_spec("NULL(vfs(FSID_TYPE=uuid,umask=022))") == Fsal("NULL", (), Fsal("VFS", (("fsid_type", "uuid"), ("umask", "022"))))
    assert parse_spec("PROXY_V4(Srv_Addr=::FFFF:127.0.0.1)").options == (("Srv_Addr", "::ffff:7f00:1"),)
    assert parse_spec("VFS(cansettime=yes, umask=0o7)").options == (("cansettime", "true"), ("umask", "07"))


def test_the_cli_syntax():
    assert parse_spec("VFS") == Fsal() and parse_spec(" VFS ( ) ") == Fsal()
    rgw = parse_spec('RGW(user_id=u, access_key_id=k, secret_access_key="a,b(c)\\"d", init_args="--x=1, --y")')
    assert dict(rgw.options)["secret_access_key"] == 'a,b(c)"d' and dict(rgw.options)["init_args"] == "--x=1, --y"
    assert parse_spec('MEM(Async_Type="inline")').options == (("Async_Type", "inline"),)
    assert dict(parse_spec('CEPH(user_id="@literal")').options)["user_id"] == "@literal"
    spaced = Fsal("GLUSTER", (("volume", " v\u00a0"), ("hostname", "h\u2003x")))   # Unicode blanks are kept
    assert parse_spec(str(spaced)) == spaced


def test_values_from_files(tmp_path):
    """`key=@/path` takes the file's content (one trailing newline dropped): secrets stay out
    of shell history and the CIB."""
    from ganesha_ha.fsal import read_value_file

    (tmp_path / "key").write_text("AQBsecret==\n")
    fsal = parse_spec(f"CEPH(user_id=admin,secret_access_key=@{tmp_path / 'key'})", read_value_file)
    assert dict(fsal.options)["secret_access_key"] == "AQBsecret=="
    with pytest.raises(ValidationError, match="cannot read .*missing"):
        parse_spec(f"CEPH(secret_access_key=@{tmp_path / 'missing'})", read_value_file)
    with pytest.raises(ValidationError, match="not allowed"):
        parse_spec(f"CEPH(secret_access_key=@{tmp_path / 'key'})")


# ---- secrets --------------------------------------------------------------------------------

secret_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e, blacklist_characters='\\"'),
                      min_size=6, max_size=30).filter(lambda s: REDACTED not in s)


@given(secret=secret_text)
def test_a_secret_is_never_shown(secret):
    """Not by str() (the CLI's text), repr() (logs, tracebacks), to_dict(redact=True) (--json),
    nor by any error about it; only the registry's form keeps it."""
    def shown(fsal):
        return [str(fsal), repr(fsal), str(fsal.to_dict(redact=True)), str(Fsal("NULL", (), fsal)),
                repr(export_with(fsal)), str(export_with(fsal).to_dict(redact=True))]

    # The secret may only be text the display shows anyway (the key's name: "secret" is in
    # "secret_access_key"); the baseline carries the same key with a one-letter value.
    assume(not any(secret in s for s in shown(Fsal("CEPH", (("user_id", "admin"), ("secret_access_key", "x"))))))
    fsal = Fsal("CEPH", (("user_id", "admin"), ("secret_access_key", secret)))
    assert not any(secret in s for s in shown(fsal)) and REDACTED in str(fsal)
    assert fsal.to_dict()["options"][1] == ["secret_access_key", secret]
    assert fsal.secrets() == [secret]
    for bad in (secret + "\n", secret + "\\", secret * 20):      # refused: control char, backslash, too long
        with pytest.raises(ValidationError) as err:
            Fsal("CEPH", (("secret_access_key", bad),))
        assert secret not in str(err.value)


@given(secret=secret_text.filter(lambda s: not any(c in s for c in ",()")),
       spelling=st.sampled_from(["CEPH(user_id=a,secret_access_key={s}",              # ')' missing
                                 "CEPH(user_id=a,Secret_Access_Key={s}\")",           # a stray quote
                                 "CEPH(user_id=a,secret_access_key={s}(x))",           # a parenthesis
                                 'CEPH(user_id=a,secret_access_key="{s}',              # quote not closed
                                 "RGW(secret_access_key = {s},user_id=u,access_key_id=k) trailing",
                                 "CEPH(secret_access_key={s},user_id=a,=1)",
                                 "NULL(CEPH(secret_access_key={s}),x"]))
def test_a_secret_in_a_spec_that_does_not_parse_is_not_repeated(secret, spelling):
    """A typo anywhere in a --fsal that holds a secret: the error names the position, and shows
    the spec with the secret's value redacted."""
    # a secret that is a piece of the rest of the message ("access" of secret_access_key, found
    # by Hypothesis) would be "repeated" by any message: such a draw proves nothing
    assume(secret not in spelling.replace("{s}", REDACTED) + " (expected NAME or NAME(key=value,...))")
    text = spelling.format(s=secret)
    with pytest.raises(ValidationError) as err:
        parse_spec(text)
    assert secret not in str(err.value) and "at character" in str(err.value)
    assert REDACTED in str(err.value)


# ---- the registry -------------------------------------------------------------------------

def test_registry_form_round_trips_and_an_unknown_fsal_is_kept_but_not_rendered():
    f = parse_spec("NULL(MEM(Inode_Size=65536,Async_Delay=3))")
    assert Fsal.from_dict(f.to_dict()) == f and Fsal.from_dict({"name": "VFS"}) == Fsal()
    odd = Fsal.from_dict({"name": "FUTURE_FS", "options": [["k", "v"]]})
    assert odd.problem and "not a supported FSAL" in odd.problem
    assert odd.to_dict() == {"name": "FUTURE_FS", "options": [["k", "v"]]}
    hidden = Fsal.from_dict({"name": "CEPH", "options": [["secret_access_key", "s3cr3t"], ["new_key", "k"],
                                                         ["new_option", "shown"]]})
    assert hidden.problem and "s3cr3t" not in str(hidden) + str(hidden.to_dict(redact=True))
    assert "shown" in str(hidden) and "=k" not in str(hidden)
    exp = export_with(odd)
    with pytest.raises(ValidationError, match="FUTURE_FS.*supported"):
        check_renderable(exp, "/v")
    nested = Fsal.from_dict({"name": "NULL", "stacked": {"name": "MEM", "options": [["Bogus", "1"]]}})
    assert "Bogus" in nested.problem
    with pytest.raises(ValidationError):
        Fsal.from_dict({"name": "V F S"})


def test_paths_of_remote_fsals_are_their_own_namespace():
    mem = Fsal("MEM")
    assert export_with(mem, "/scratch//x/").path == "/scratch/x"
    assert export_with(mem, "/").path == "/"
    for bad in ("scratch", "/a/../b", "/a\nb"):
        with pytest.raises(ValidationError):
            export_with(mem, bad)
    assert export_with(Fsal(), "/in/volume").path == "in/volume"     # local: relative to the volume
    assert export_with(Fsal("NULL", (), mem)).remote and not export_with(Fsal("NULL", (), Fsal())).remote
    # written before FSAL namespaces: a relative path of a remote FSAL is the same path there
    old = export_with(Fsal()).to_dict() | {"path": "scratch", "ganesha": {"fsal": {"name": "MEM"}}}
    assert Export.from_dict(old).path == "/scratch"
    assert "/scratch" in render_export(Export.from_dict(old), "/srv/vol")


# ---- what changes in place ------------------------------------------------------------------

def test_only_mems_async_options_change_in_place():
    mem = parse_spec("MEM(Inode_Size=65536)")
    assert mem.in_place_change(parse_spec("MEM(Inode_Size=65536,Async_Type=fixed,Async_Delay=5)"))
    # a module option: no re-add applies it before Ganesha loads the module again (its restart),
    # and a re-add would drop MEM's files: changed in place (the registry), with a warning
    assert mem.in_place_change(parse_spec("MEM(Inode_Size=1024)"))
    assert parse_spec("NULL(VFS)").in_place_change(parse_spec("NULL(VFS(maxread=1048576))"))
    assert not Fsal().in_place_change(parse_spec("VFS(maxread=1048576,fsid_type=uuid)"))
    assert parse_spec("NULL(MEM)").in_place_change(parse_spec("NULL(MEM(Async_Delay=1))"))
    assert not Fsal().in_place_change(parse_spec("VFS(fsid_type=uuid)"))
    assert not parse_spec("PROXY_V4(Srv_Addr=127.0.0.1)").in_place_change(
        parse_spec("PROXY_V4(Srv_Addr=127.0.0.1,NFS_Port=2050)"))
    assert not Fsal().in_place_change(Fsal("NULL", (), Fsal()))


def test_module_options_must_agree_within_a_volume():
    a, b = parse_spec("MEM(Inode_Size=65536)"), parse_spec("MEM(Inode_Size=1024)")
    check_module_agreement([("x", a), ("y", parse_spec("MEM(Inode_Size=65536,Async_Delay=2)")), ("z", Fsal())])
    with pytest.raises(ConflictError, match="'y'.*'x'"):
        check_module_agreement([("x", a), ("y", b)])
    with pytest.raises(ConflictError, match="MEM"):
        check_module_agreement([("x", a), ("y", Fsal("NULL", (), Fsal("MEM")))])
    secret = parse_spec("RGW(user_id=u,access_key_id=k,secret_access_key=s,init_args=--a)")
    other = parse_spec("RGW(user_id=u,access_key_id=k,secret_access_key=s,init_args=--b)")
    with pytest.raises(ConflictError) as err:
        check_module_agreement([("x", secret), ("y", other)])
    assert "=s" not in str(err.value)


# ---- rendering ------------------------------------------------------------------------------

def test_rendering_by_kind_and_module_blocks_beside_the_export():
    text = render_export(export_with(parse_spec(
        'NULL(MEM(Inode_Size=65536,Async_Type=FIXED))')), "/v")
    assert text.startswith("MEM {\n    Inode_Size = 65536;\n}\nEXPORT {\n")
    assert "            Name = MEM;\n            Async_Type = fixed;\n" in text and text.count("MEM {") == 1
    proxy = render_export(export_with(parse_spec("PROXY_V4(Srv_Addr=192.0.2.1,NFS_Port=2050)")), "/v")
    assert "Srv_Addr = 192.0.2.1;\n" in proxy and "NFS_Port = 2050;" in proxy
    assert "RPC_Client_Timeout = 2;" in proxy, "ganesha-ha's default against the RemoveExport stall"
    rgw = render_export(export_with(parse_spec('RGW(user_id=u,access_key_id=k,secret_access_key="s#;}",'
                                               'rgw_name=client.rgw)')), "/v")
    assert 'secret_access_key = "s#;}";' in rgw and 'RGW {\n    name = "client.rgw";\n}' in rgw
    assert "umask = 022;" in render_export(export_with(parse_spec("VFS(umask=22)")), "/v")


def value_of(kind, opt):
    if kind == BOOL:
        return st.sampled_from(["true", "False", "yes", "off"])
    if kind in (UINT,):
        return st.integers(opt.lo, opt.hi).map(str)
    if kind == MODE:
        return st.integers(0, 0o777).map(lambda n: f"0{n:o}")
    if kind == TOKEN:
        return st.sampled_from(opt.choices).map(lambda c: c.upper())
    if kind == IP:
        return st.ip_addresses().map(str)
    if kind == PATH:
        return nasty_text.map(lambda t: "/" + t)
    return nasty_text


@st.composite
def fsals(draw, depth=0):
    name = draw(st.sampled_from(sorted(n for n in SCHEMAS if depth < 3 or n != "NULL")))
    sch = schema_of(name)
    chosen = draw(st.lists(st.sampled_from(sch.options), unique_by=lambda o: o.key, max_size=4)) if sch.options else []
    chosen += [o for o in sch.options if o.required and o not in chosen]
    options = tuple((o.key, draw(value_of(o.kind, o))) for o in chosen)
    stacked = draw(fsals(depth + 1)) if sch.stacking else None
    return name, options, stacked


def build(spec):
    name, options, stacked = spec
    return Fsal(name, options, build(stacked) if stacked else None)


@settings(max_examples=300)
@given(fsals())
def test_a_rendered_fsal_parses_back_to_the_same_record(spec):
    """Whatever typed values the record accepts (quotes, braces, '#', ';' in text) stay values:
    the rendered file parses back to the module blocks and one EXPORT block whose FSAL is the
    same record (with ganesha-ha's defaults written out); its CLI form parses back too."""
    try:
        fsal = build(spec)
    except ValidationError:
        event("refused")
        return
    event(f"{fsal.depth()} deep, {len(fsal.options)} options")
    *modules, block = parse_config(render_export(export_with(fsal), "/v"))
    assert [m.name for m in modules] == [layer.name for layer in fsal.layers() if layer.module_options()]
    (fsal_block,) = block.sub("FSAL")
    assert fsal_from_block(fsal_block, modules) == with_ha_defaults(fsal)
    assert export_from_block(block, "/v", "3", modules).ganesha.fsal == with_ha_defaults(fsal)
    if REDACTED not in str(fsal):   # a secret's value is not shown, so cannot come back
        assert parse_spec(str(fsal)) == fsal


bare_options = [(name, opt) for name, sch in sorted(SCHEMAS.items()) for opt in sch.options
                if opt.kind not in (STR, PATH)]


@settings(max_examples=400)
@given(st.sampled_from(bare_options), nasty_text | st.sampled_from(["1", "007", "0x10", "TRUE", "::1", "fixed"]))
def test_values_written_bare_are_one_safe_word_or_refused(which, text):
    """Numbers, booleans, tokens, addresses and modes are written without quotes, so whatever a
    user gives is either refused or becomes one word of digits, letters and ':' '.' '_' that
    Ganesha's lexer reads as that kind: it cannot end the statement, open a block or comment."""
    import re

    name, opt = which
    try:
        value = normalize_value(name, opt, text)
    except ValidationError:
        event("refused")
        return
    event(f"kept as {opt.kind}")
    assert re.fullmatch(r"[A-Za-z0-9_.:]+", value), value
    assert normalize_value(name, opt, value) == value


def test_the_readme_table_lists_every_fsal_and_option():
    """README's FSAL table is the schema's: one row per FSAL naming each of its options."""
    from conftest import ROOT

    rows = {line.split("|")[1].strip(): line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in SCHEMAS}
    assert set(rows) == set(SCHEMAS)
    for name, sch in SCHEMAS.items():
        for opt in sch.options:
            assert f"`{opt.key}`" in rows[name], (name, opt.key)
        assert (sch.package or "— (none)") in rows[name]
