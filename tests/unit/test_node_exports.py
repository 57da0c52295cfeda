"""The node's own exports of a volume, outside ganesha-ha (backends/node_exports.py): the
pure comparison, fed by the project's readers (formats/exports5.parse for exports(5),
ganesha_node for EXPORT blocks with `%include`s), with the file and line of each."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.backends.ganesha_node import exports_of, load_node_config
from ganesha_ha.backends.knfsd_table import escape_exports_path
from ganesha_ha.backends.node_exports import (NodeExport, exports5_entries, exports5_warning, follow_links, in_volume,
                                             normalise, of_volume, read_exports_files)

NAMES = st.text(alphabet="abcXYZ019 #-_.é", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
PARTS = st.lists(NAMES, min_size=1, max_size=4)


@st.composite
def spellings(draw, parts: list[str]) -> str:
    """One way to write /parts... that a lookup reads as the same directory: slashes doubled,
    `.` components, `x/..` detours, trailing slashes."""
    out = [""]
    for part in parts:
        for _ in range(draw(st.integers(0, 2))):
            out.append(draw(st.sampled_from(["", ".", "detour/.."])))
        out.append(part)
    out.append(draw(st.sampled_from(["", "/", "//", "/.", "/./"])))
    return "/".join(out)


@given(PARTS, st.data())
def test_every_spelling_of_a_directory_normalises_to_one_path(parts, data):
    assert normalise(data.draw(spellings(parts))) == "/" + "/".join(parts)


@given(PARTS, PARTS, st.data())
def test_a_directory_is_in_the_volume_whatever_the_spelling_of_either(mount, inner, data):
    mountpoint = data.draw(spellings(mount))
    assert in_volume(data.draw(spellings(mount)), mountpoint)                       # the mount point itself
    assert in_volume(data.draw(spellings(mount + inner)), mountpoint)               # a directory in it
    sibling = mount[:-1] + [mount[-1] + data.draw(NAMES)]                           # /srv/vol2 beside /srv/vol
    assert not in_volume(data.draw(spellings(sibling + inner)), mountpoint)
    assert not in_volume("/".join(mount + inner), mountpoint)                       # relative: refused by exportfs


def test_dot_dot_never_climbs_above_the_root_and_relative_paths_are_none():
    assert normalise("/../srv/./vol//") == "/srv/vol"
    assert normalise("/srv/other/../vol/a") == "/srv/vol/a"
    assert normalise("srv/vol") is None and normalise("") is None
    assert in_volume("/srv/vol/../vol/a", "/srv/vol/") and not in_volume("/srv/vol/../other", "/srv/vol")


# ---- exports(5): written as an administrator may write it, read back with file and line -------------

@st.composite
def exports_files(draw):
    """(file text, {line: (path as written's meaning, in the volume /srv/vol)}): lines of
    directories in and out of the volume, each spelt quoted or escaped, with comments, blank
    lines, duplicates, `-defaults` and clients continued on the next line."""
    lines: list[str] = []
    expected: dict[int, tuple[str, bool]] = {}
    written_before: list[tuple[str, list[str], bool]] = []
    for _ in range(draw(st.integers(1, 6))):
        if written_before and draw(st.booleans()):   # the same directory again (exportfs merges them)
            word, parts, inside = draw(st.sampled_from(written_before))
        else:
            inside = draw(st.booleans())
            parts = (["srv", "vol"] if inside else draw(st.sampled_from([["srv", "vol2"], ["srv"], ["other"]])))
            parts = parts + draw(st.lists(NAMES, max_size=2))
            written = draw(spellings(parts))
            how = draw(st.sampled_from(["escaped", "quoted", "partly quoted"]))
            if how == "escaped":
                word = escape_exports_path(written)
            elif how == "quoted":
                word = f'"{written}"'
            else:   # exports(5): quotes may open anywhere in a word
                head, _, tail = written.rpartition("/")
                word = f'{escape_exports_path(head)}/"{tail}"' if tail else escape_exports_path(written)
            written_before.append((word, parts, inside))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# /srv/vol/commented *(rw)", "   # indented comment"])))
        clients = draw(st.lists(st.sampled_from(["*", "10.0.0.0/24", "host-a(rw,sync)", "(ro)"]),
                                max_size=3))
        continued = draw(st.booleans())
        defaults = draw(st.sampled_from(["", " -rw,no_subtree_check"]))
        first = len(lines) + 1
        if continued and clients:
            lines.append(word + defaults + " \\")
            lines += [f"    {c}" + (" \\" if i < len(clients) - 1 else "") for i, c in enumerate(clients)]
        else:
            lines.append(word + defaults + "".join(f" {c}" for c in clients)
                         + draw(st.sampled_from(["", "   # a comment after the clients"])))
        expected[first] = ("/" + "/".join(parts), inside)
    return "\n".join(lines) + "\n", expected


@given(exports_files())
def test_the_lines_of_the_volume_are_found_with_their_line_numbers(case):
    text, expected = case
    [entries, problems] = exports5_entries([("/etc/exports", text.encode("utf-8", "surrogateescape"))])
    assert problems == []
    assert {e.line: normalise(e.path) for e in entries} == {n: p for n, (p, _) in expected.items()}
    hits = of_volume(entries, "/srv/vol")
    assert sorted(e.line for e in hits) == sorted(n for n, (_, inside) in expected.items() if inside)
    assert all(e.source == "/etc/exports" for e in hits)
    if hits:
        [warning] = exports5_warning(hits, "/srv/vol")
        assert f"at /etc/exports line {hits[0].line}" in warning


def test_a_line_outside_the_volume_with_one_of_its_fsids_is_named_and_so_is_each_file():
    main = b"/srv/vol/a 10.0.0.0/24(rw,fsid=7)\n/elsewhere *(rw,fsid=0x0)\n/data *(ro,fsid=42)\n"
    extra = b'# moved here by hand\n"/srv/vol/my dir" \\\n    host-a(rw) \\\n    host-b(ro)\n'
    entries, problems = exports5_entries([("/etc/exports", main), ("/etc/exports.d/old.exports", extra)])
    hits = of_volume(entries, "/srv/vol", fsids={"42"})
    assert [(e.where(), e.path, e.clients, e.fsid) for e in hits] == [
        ("/etc/exports line 1", "/srv/vol/a", ("10.0.0.0/24",), "7"),
        ("/etc/exports line 3", "/data", ("*",), "42"),
        ("/etc/exports.d/old.exports line 2", "/srv/vol/my dir", ("host-a", "host-b"), None)]
    [warning] = exports5_warning(hits, "/srv/vol")
    assert warning.startswith("remove the line(s) exporting /srv/vol/a (to 10.0.0.0/24, fsid=7) at /etc/exports "
                              "line 1, /data (to *, fsid=42) at /etc/exports line 3, /srv/vol/my dir (to host-a "
                              "host-b) at /etc/exports.d/old.exports line 2 from the exports(5) files of every node")
    assert exports5_warning([], "/srv/vol") == []


def test_a_file_exportfs_cannot_read_to_its_end_is_a_problem_and_what_it_reads_is_compared():
    """getexportent returns no entry after a bad line: the lines before it are exported."""
    entries, problems = exports5_entries([("/etc/exports", b"/srv/vol/x \\\n  *(ro)\n/srv/vol/a *(rw,)\n/srv/vol/z *\n"),
                                          ("/etc/exports.d/b.exports", b"/srv/vol/b *\n")])
    assert problems == ["/etc/exports line 3: empty option in 'rw,' (exportfs stops reading this file there; the "
                        "lines after it are not compared)"]
    assert [(e.path, e.line) for e in of_volume(entries, "/srv/vol")] == [("/srv/vol/x", 1), ("/srv/vol/b", 1)]


def test_a_line_naming_a_link_into_the_volume_is_named_with_the_directory_exportfs_exports(tmp_path):
    """exportfs follows symbolic links (measured: a line for LINK/d, LINK -> the volume, is
    VOLUME/d in etab; tryout6 C): such a line exports the volume, a link elsewhere does not,
    and a line written plainly is not said to be 'exported as' itself."""
    root = tmp_path.resolve()
    vol, other = root / "vol", root / "other"
    (vol / "d").mkdir(parents=True)
    other.mkdir()
    (root / "to-vol").symlink_to(vol)
    (root / "to-other").symlink_to(other)
    text = (f"{root}/to-vol/d 10.0.0.4(rw)\n{root}/to-other 10.0.0.5(rw)\n{vol}//d/ 10.0.0.6(rw)\n"
            f"{root}/to-vol/not-yet *(ro)\n")
    entries, _ = exports5_entries([("/etc/exports", text.encode())])
    hits = of_volume(follow_links(entries), str(vol))
    assert [(e.line, e.resolved) for e in hits] == [(1, f"{vol}/d"), (3, None), (4, f"{vol}/not-yet")]
    [warning] = exports5_warning(hits, str(vol))
    assert f"exporting {root}/to-vol/d (to 10.0.0.4, exported as {vol}/d) at /etc/exports line 1, {vol}//d/ (to " \
           "10.0.0.6) at /etc/exports line 3" in warning


def test_a_line_above_the_volume_with_crossmnt_is_named_and_one_without_is_not():
    """crossmnt exports every file system mounted below the line to its clients, with its
    options (exports(5)): the volume's mount among them (tryout6 D)."""
    text = (b"/srv 10.0.0.9(ro)\n/srv -crossmnt 10.0.0.3(rw,fsid=0)\n/ a(ro) b(crossmnt)\n/srv/vol/a *(crossmnt)\n"
            b"/srv/other *(crossmnt)\n/srv 10.0.0.8(crossmnt,nocrossmnt)\n/data *(crossmnt,fsid=42)\n")
    entries, _ = exports5_entries([("/etc/exports", text)])
    hits = of_volume(entries, "/srv/vol", fsids={"42"})
    assert [e.line for e in hits] == [2, 3, 4, 7]
    [warning] = exports5_warning(hits, "/srv/vol")
    assert ("exporting /srv (to 10.0.0.3, fsid=0, crossmnt: the volume goes to them too, with these options, where "
            "it is mounted) at /etc/exports line 2, / (to a b, crossmnt: the volume goes to them too, with these "
            "options, where it is mounted) at /etc/exports line 3, /srv/vol/a (to *) at /etc/exports line 4, /data "
            "(to *, fsid=42) at /etc/exports line 7 from") \
        in warning


def test_more_than_five_are_counted():
    hits = [NodeExport(f"/srv/vol/{i}", "/etc/exports", i) for i in range(1, 9)]
    assert "/srv/vol/5 (to ) at /etc/exports line 5 and 3 more from" in exports5_warning(hits, "/srv/vol")[0]


def test_exportfs_files_are_the_main_file_then_the_directorys_exports_files_in_order(tmp_path):
    d = tmp_path / "exports.d"
    d.mkdir()
    (d / "b.exports").write_bytes(b"/b\n")
    (d / "a.exports").write_bytes(b"/a\n")
    (d / "c.conf").write_bytes(b"/c\n")                      # not *.exports: exportfs skips it
    (d / ".hidden.exports").write_bytes(b"/h\n")             # nor a hidden file
    (d / "sub.exports").mkdir()                              # nor a directory
    assert read_exports_files(str(tmp_path / "exports"), str(d)) == (
        [(str(d / "a.exports"), b"/a\n"), (str(d / "b.exports"), b"/b\n")], [])
    (tmp_path / "exports").write_bytes(b"/m\n")
    assert [n for n, _ in read_exports_files(str(tmp_path / "exports"), str(tmp_path / "none"))[0]] == [
        str(tmp_path / "exports")]


# ---- Ganesha: EXPORT blocks named with the file (an %include) and line they are written at -------------

def test_ganesha_blocks_are_named_by_file_and_line_across_includes(tmp_path):
    (tmp_path / "exports.conf").write_text(
        "# the volume's blocks, moved out of ganesha.conf\n\n"
        "EXPORT\n{\n  Export_Id = 11;\n  Path = \"/srv/vol/a b\";\n}\n"
        "EXPORT { Export_Id = 12; Path = '/srv//vol/b/'; Pseudo = \"/multi\n/line\"; }\n"
        "EXPORT { Export_Id = 13; Path = /srv/vol2; }\n")
    main = tmp_path / "ganesha.conf"
    main.write_text('NFS_CORE_PARAM { Enable_NLM = false; }\n%include "exports.conf"\n'
                    "EXPORT { Export_Id = 6001; Path = /other; }\n")
    conf, why = load_node_config(str(main))
    assert why is None and conf is not None
    assert [(e.export_id, e.where()) for e in conf.exports] == [
        (11, f"{tmp_path}/exports.conf line 3"), (12, f"{tmp_path}/exports.conf line 8"),
        (13, f"{tmp_path}/exports.conf line 10"), (6001, f"{main} line 3")]
    [warning] = exports_of(conf, "/srv/vol", {6001})
    assert warning.startswith(f"remove the EXPORT block(s) of Export_Id 11 (/srv/vol/a b) at {tmp_path}/exports.conf "
                              f"line 3, Export_Id 12 (/srv//vol/b/) at {tmp_path}/exports.conf line 8, Export_Id 6001 "
                              f"(/other) at {main} line 3 from the Ganesha config of every node")


def test_a_ganesha_block_taking_a_pseudo_path_of_the_volume_is_named(tmp_path):
    """Measured (tryout6 E): a block `Path = /srv/vol4; Pseudo = /b` in the node's config, and
    after a restart of that Ganesha the volume's own export of /b is refused ('0 export entries
    ... added because (invalid param value) errors'), so the start left it out with no word of
    the block. Compared normalised; another pseudo path is not named, nor the volume's own
    export left in the file (same Export_Id: an import's block, adopted by the start)."""
    main = tmp_path / "ganesha.conf"
    main.write_text("EXPORT { Export_Id = 960; Path = /srv/vol4; Pseudo = /b; }\n"
                    "EXPORT { Export_Id = 961; Path = /srv/vol5; Pseudo = \"//c/./\"; }\n"
                    "EXPORT { Export_Id = 962; Path = /srv/vol6; Pseudo = /d; }\n"
                    "EXPORT { Export_Id = 3; Path = /m; Pseudo = /m; FSAL { Name = MEM; } }\n")
    conf, why = load_node_config(str(main))
    assert why is None and conf is not None
    [warning] = exports_of(conf, "/srv/vol", {1, 2, 3}, {"/b": 1, "/c": 2, "/e": 4, "/m": 3})
    assert warning.startswith(f"remove the EXPORT block(s) of Export_Id 960 (/srv/vol4, pseudo /b of the volume: its "
                              f"own export of it is then refused on that node) at {main} line 1, Export_Id 961 "
                              f"(/srv/vol5, pseudo //c/./ of the volume: its own export of it is then refused on "
                              f"that node) at {main} line 2, Export_Id 3 (/m) at {main} line 4 from"), warning
    assert exports_of(conf, "/srv/vol", {1}) == []


def test_a_ganesha_block_above_the_volume_over_the_nodes_file_systems_is_named(tmp_path):
    """Measured (tryout6 I): a VFS block with Path = the parent of a volume's mount point serves
    the volume's files (an NFSv4.1 client read PSEUDO/vol1/a/secret from the tmpfs mounted
    there). FSALs with their own namespace (MEM: `/` is its own) and a sibling are not named."""
    main = tmp_path / "ganesha.conf"
    main.write_text("EXPORT { Export_Id = 1; Path = /srv; Pseudo = /par; FSAL { Name = vfs; } }\n"
                    "EXPORT { Export_Id = 2; Path = /; Pseudo = /m; FSAL { Name = MEM; } }\n"
                    "EXPORT { Export_Id = 3; Path = /; Pseudo = /n; FSAL { Name = NULL; FSAL { Name = VFS; } } }\n"
                    "EXPORT { Export_Id = 4; Path = /srv/other; Pseudo = /o; FSAL { Name = VFS; } }\n"
                    "EXPORT { Export_Id = 5; Path = /srv/vol/x; Pseudo = /x; FSAL { Name = VFS; } }\n"
                    "EXPORT { Export_Id = 9; Path = /srv/other; Pseudo = /p; FSAL { Name = VFS; } }\n")
    conf, why = load_node_config(str(main))
    assert why is None and conf is not None
    [warning] = exports_of(conf, "/srv/vol", {9})
    above = "above it: Ganesha serves the file systems mounted below, the volume too, where it is mounted"
    assert warning.startswith(f"remove the EXPORT block(s) of Export_Id 1 (/srv, {above}) at {main} line 1, "
                              f"Export_Id 3 (/, {above}) at {main} line 3, Export_Id 5 (/srv/vol/x) at {main} line 5, "
                              f"Export_Id 9 (/srv/other) at {main} line 6 from"), warning   # in it; its Export_Id


@st.composite
def ganesha_configs(draw):
    """(config text, {line of an EXPORT block: (Export_Id, in the volume /srv/vol)}): blocks on
    one line or several, with comments, other blocks between, paths spelt in any way and quoted
    (Ganesha reads a path with a blank only quoted)."""
    lines = ["NFS_CORE_PARAM { Enable_NLM = false; }  # not an export"]
    expected: dict[int, tuple[int, bool]] = {}
    for export_id in range(1, draw(st.integers(1, 6)) + 1):
        inside = draw(st.booleans())
        parts = (["srv", "vol"] if inside else draw(st.sampled_from([["srv", "vol2"], ["other"]])))
        path = draw(spellings(parts + draw(st.lists(NAMES, max_size=2))))
        quote = draw(st.sampled_from(['"', "'"]))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# EXPORT { Export_Id = 99; Path = /srv/vol; }",
                                               "LOG { Default_Log_Level = WARN; }"])))
        expected[len(lines) + 1] = (export_id, inside)
        if draw(st.booleans()):
            lines.append(f"EXPORT {{ Export_Id = {export_id}; Path = {quote}{path}{quote}; Pseudo = /p{export_id}; }}")
        else:
            header = draw(st.sampled_from(["EXPORT", "export {", "Export\t{  # the block"]))
            lines += [header, *(["{"] if header == "EXPORT" else []),
                      f"    Export_Id = {export_id};", f"    Path = {quote}{path}{quote};",
                      "    FSAL { Name = VFS; }", "}"]
    return "\n".join(lines) + "\n", expected


@given(ganesha_configs())
def test_export_blocks_of_the_volume_are_found_with_their_line_numbers(case):
    from ganesha_ha.backends.ganesha_node import parse_node_config

    text, expected = case
    conf = parse_node_config(text, "/etc/ganesha/ganesha.conf")
    assert {e.line: e.export_id for e in conf.exports} == {n: i for n, (i, _) in expected.items()}
    hits = of_volume(conf.exports, "/srv/vol")
    assert sorted(e.line for e in hits) == sorted(n for n, (_, inside) in expected.items() if inside)
