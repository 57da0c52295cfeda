"""Several exports in one AddExport (backends/ganesha_batch.py) against the real ganesha.nfsd:
a start sends its new exports together, and one bad export among them is still reported alone,
in Ganesha's words, with every other export live and read back."""
import subprocess

from ganesha_ha.backends.ganesha import GaneshaBackend
from ganesha_ha.volume import Volume

N = 40


class CallLog:
    """Counts the D-Bus methods the backend calls (a spy on the real bus, nothing replaced)."""

    def __init__(self, backend: GaneshaBackend, reads: bool = False):
        self.methods: list[str] = []
        real = backend.bus.call

        def call(path, iface, method, *args, **kw):
            self.methods.append(method)
            return real(path, iface, method, *args, **kw)

        real_each = backend.bus.call_each

        def call_each(path, iface, method, args):
            self.methods.extend([f"{method}*"] * len(args))   # sent together
            return real_each(path, iface, method, args)

        real_send = backend.bus.send

        def send(path, iface, method, args, **kw):
            # sent together, answers read later; an AddExport (one file of several exports) as itself
            self.methods.extend([method] if method == "AddExport" else [f"{method}*"] * len(args))
            sent = real_send(path, iface, method, args, **kw)
            if reads:   # and when its answers are read: "<METHOD"
                real_wait = sent.wait

                def wait():
                    self.methods.append(f"<{method}")
                    return real_wait()
                sent.wait = wait
            return sent

        backend.bus.call = call
        backend.bus.call_each = call_each
        backend.bus.send = send

    def count(self, method: str) -> int:
        return self.methods.count(method)


def make_volume(ganesha, vol, clients=lambda i: ["127.0.0.1(rw)"], reads=False):
    """A Ganesha volume of N exports d1..dN (recorded, not started), and a spied backend."""
    backend = GaneshaBackend(ganesha.settings())
    volume = Volume(vol, ganesha.settings(), backend=backend)
    volume.init("ganesha", (3000, 3999))
    for i in range(1, N + 1):
        (vol / f"d{i}").mkdir()
        (vol / f"d{i}" / "f.txt").write_text(f"file {i}\n")
        volume.add(str(vol / f"d{i}"), clients(i), pseudo=f"/d{i}", record_only=True)
    return volume, CallLog(backend, reads)


def live_paths(ganesha) -> dict[int, str]:
    return {i: p for i, p in ganesha.show_exports().items() if 3000 <= i <= 3999}


def nfs_cat(ganesha, pseudo_file):
    return subprocess.run(["nfs-cat", ganesha.nfs_url(pseudo_file)], capture_output=True, text=True, timeout=30)


def test_a_start_adds_its_exports_in_one_call(ganesha, tmpfs_volume):
    volume, calls = make_volume(ganesha, tmpfs_volume)
    result = volume.start()
    assert result.failed == [] and result.applied == N
    # one ShowExports for the whole start (the id check, the pseudo paths, add or update), one
    # AddExport, the read-back of each export
    assert calls.methods == ["ShowExports", "AddExport"] + ["DisplayExport*"] * N, calls.methods
    assert live_paths(ganesha) == {e.export_id: str(tmpfs_volume / e.path) for e in volume.load().exports}
    assert nfs_cat(ganesha, f"/d{N}/f.txt").stdout == f"file {N}\n"
    del calls.methods[:]
    assert volume.monitor().drift.clean
    assert calls.methods == ["ShowExports"] + ["DisplayExport*"] * N, calls.methods
    del calls.methods[:]
    assert volume.stop() == N and live_paths(ganesha) == {}
    # ShowExports lists each export's full path: no DisplayExport needed to know it is ours
    assert calls.methods == ["ShowExports"] + ["RemoveExport*"] * N, calls.methods


def volume_without_d17(ganesha, vol, monkeypatch):
    """make_volume's, export #17's directory gone and the node's own check of it bypassed (as
    when the directory goes between that check and Ganesha's load), so that Ganesha refuses
    its block inside a batch. Returns the volume, the spy, the exports by path, #17."""
    monkeypatch.setattr("ganesha_ha.backends.ganesha_changes.require_export_directory", lambda path, server: None)
    volume, calls = make_volume(ganesha, vol)
    exports = {e.path: e for e in volume.load().exports}
    for f in (vol / "d17").iterdir():
        f.unlink()
    (vol / "d17").rmdir()
    return volume, calls, exports, exports["d17"]


def assert_failed_alone(result, bad):
    """`bad` failed, in Ganesha's words naming it; every other export is live."""
    assert [f.export.path for f in result.failed] == [bad.path], result.failed
    reason = str(result.failed[0].error)
    assert f"Export_Id {bad.export_id}" in reason and bad.path in reason
    assert result.applied == N - 1


def test_one_bad_export_in_a_batch_is_reported_alone_and_the_others_go_live(ganesha, tmpfs_volume, monkeypatch):
    """Ganesha stops loading a batch at a block it cannot load (export #17's directory is gone):
    the blocks before it are live, it fails in Ganesha's own words, the blocks after it go
    together again. The node's own check of the directory (fsutil.require_export_directory,
    which refuses such an export before any AddExport) is bypassed here, as when the directory
    goes between that check and Ganesha's load: what is tested is Ganesha's refusal inside a
    batch."""
    volume, calls, exports, bad = volume_without_d17(ganesha, tmpfs_volume, monkeypatch)
    result = volume.start()
    assert_failed_alone(result, bad)
    live = live_paths(ganesha)
    assert bad.export_id not in live
    assert live == {e.export_id: str(tmpfs_volume / e.path) for e in exports.values() if e is not bad}
    assert nfs_cat(ganesha, "/d16/f.txt").stdout == "file 16\n"
    assert nfs_cat(ganesha, "/d18/f.txt").stdout == "file 18\n"
    # the batch, d17 alone, then d18..dN together again: not one call per export
    assert calls.count("AddExport") == 3, calls.methods
    monitor = volume.monitor()
    assert [f.export.path for f in monitor.failed] == ["d17"]


def test_an_unresolved_host_name_in_a_batch_is_a_warning_of_its_export_only(ganesha, tmpfs_volume):
    """Ganesha's "Client (NAME) not found" for one block of the batch is attributed to that
    block by its line: a warning naming that export, and no export goes again on its own."""
    volume, calls = make_volume(ganesha, tmpfs_volume,
                                clients=lambda i: ["127.0.0.1(rw)"] + (["nosuch-host.invalid(ro)"] if i == 9 else []))
    result = volume.start()
    assert result.failed == [] and result.applied == N
    assert calls.count("AddExport") == 1, calls.methods
    named = [w for w in result.warnings if "nosuch-host.invalid" in w]
    assert len(named) == 1 and "(/d9)" in named[0], result.warnings
    assert nfs_cat(ganesha, "/d9/f.txt").stdout == "file 9\n"


def test_a_stop_and_a_start_again_leave_no_batch_file_behind(ganesha, tmpfs_volume):
    volume, _ = make_volume(ganesha, tmpfs_volume)
    volume.start()
    run = ganesha.workdir / "run" / "ganesha"
    assert not list(run.glob("*/exports-*.conf")), "the batch file is a vehicle only"
    volume.stop()
    assert live_paths(ganesha) == {}
    volume.start()
    assert len(live_paths(ganesha)) == N


def test_an_export_that_reads_back_wrong_is_taken_back_alone(ganesha, tmpfs_volume):
    """Export #5's only client does not resolve here: Ganesha adds it (with a dead entry), its
    read-back says it serves nobody; it is taken back and reported, the batch's others stay."""
    volume, calls = make_volume(ganesha, tmpfs_volume,
                                clients=lambda i: ["nosuch-host.invalid(rw)"] if i == 5 else ["127.0.0.1(rw)"])
    result = volume.start()
    assert [f.export.path for f in result.failed] == ["d5"], result.failed
    assert "resolves on this node" in str(result.failed[0].error)
    assert calls.count("AddExport") == 1 and calls.count("RemoveExport") == 1, calls.methods
    live = live_paths(ganesha)
    assert len(live) == N - 1 and all(p != str(tmpfs_volume / "d5") for p in live.values())
    assert nfs_cat(ganesha, "/d6/f.txt").stdout == "file 6\n"


def test_batches_go_pipelined_each_read_back_before_the_next_is_loaded(ganesha, tmpfs_volume, monkeypatch):
    """Four batches of ten: two AddExports on the way at a time; each batch's read-back is
    sent as soon as its AddExport answered, and the AddExport after next right after it
    (Ganesha answers in the order sent), so Ganesha always has a batch to load while the one
    before is judged."""
    monkeypatch.setattr("ganesha_ha.backends.ganesha_changes.BATCH_MAX", 10)
    volume, calls = make_volume(ganesha, tmpfs_volume, reads=True)
    result = volume.start()
    assert result.failed == [] and result.applied == N
    # batches 1 and 2 on their way; batch 1's answer; its read-back and batch 3 on their way,
    # then the read-back's answers (after batch 2: judged while Ganesha loads batch 3); ...
    readback = ["DisplayExport*"] * 10
    assert calls.methods == (["ShowExports", "AddExport", "AddExport"]
                             + (["<AddExport"] + readback + ["AddExport", "<DisplayExport"]) * 2
                             + (["<AddExport"] + readback + ["<DisplayExport"]) * 2), calls.methods
    assert live_paths(ganesha) == {e.export_id: str(tmpfs_volume / e.path) for e in volume.load().exports}
    assert nfs_cat(ganesha, "/d35/f.txt").stdout == "file 35\n"
    assert not list((ganesha.workdir / "run" / "ganesha").glob("*/exports-*.conf"))


def test_a_refused_block_in_a_pipelined_batch_is_still_its_exports_alone(ganesha, tmpfs_volume, monkeypatch):
    """Export #17, in the second of four batches, cannot be loaded (its directory is gone, the
    node's own check bypassed as above): it fails in Ganesha's words, attributed to it; the
    second batch's others and the later batches go live and are read back."""
    monkeypatch.setattr("ganesha_ha.backends.ganesha_changes.BATCH_MAX", 10)
    volume, calls, exports, bad = volume_without_d17(ganesha, tmpfs_volume, monkeypatch)
    result = volume.start()
    assert_failed_alone(result, bad)
    assert live_paths(ganesha) == {e.export_id: str(tmpfs_volume / e.path) for e in exports.values() if e is not bad}
    # batches 1 and 2 on their way, batch 1 read back and batch 3 sent; batch 2 stops at d17:
    # batch 4 sent, then d11..d16 read back, d17 alone, d18..d20 together again; batches 3
    # and 4 read back
    assert calls.methods == (["ShowExports", "AddExport", "AddExport"] + ["DisplayExport*"] * 10
                             + ["AddExport"] + ["AddExport", "ShowExports"] + ["DisplayExport*"] * 6
                             + ["AddExport"] + ["AddExport"] + ["DisplayExport*"] * 3
                             + ["DisplayExport*"] * 20), calls.methods
    assert nfs_cat(ganesha, "/d16/f.txt").stdout == "file 16\n"
    assert nfs_cat(ganesha, "/d18/f.txt").stdout == "file 18\n"
    assert [f.export.path for f in volume.monitor().failed] == ["d17"]


def test_an_export_that_reads_back_wrong_in_a_pipelined_batch_is_taken_back_alone(ganesha, tmpfs_volume,
                                                                                    monkeypatch):
    """Export #15's only client does not resolve: its batch (the second) loads with a warning
    naming it, so that batch is judged on its own, with later batches' AddExports on the way;
    export #25's read-back is judged while the next batch loads, and its take-back waits
    behind that AddExport. Each fails alone, everything else is live."""
    monkeypatch.setattr("ganesha_ha.backends.ganesha_changes.BATCH_MAX", 10)
    volume, calls = make_volume(ganesha, tmpfs_volume,
                                clients=lambda i: ["nosuch-host.invalid(rw)"] if i == 15 else ["127.0.0.1(rw)"])
    # export #25 reads back otherwise than the registry says: Ganesha is handed RO for it
    real_render = volume.backend(volume.load()).render_opts
    monkeypatch.setattr("ganesha_ha.backends.ganesha_changes.render_batch", _ro_for("d25", real_render))
    result = volume.start()
    assert sorted(f.export.path for f in result.failed) == ["d15", "d25"], result.failed
    assert "resolves on this node" in str(next(f.error for f in result.failed if f.export.path == "d15"))
    assert "access is RO" in str(next(f.error for f in result.failed if f.export.path == "d25"))
    assert calls.count("AddExport") == 4 and calls.count("RemoveExport") == 2, calls.methods
    live = live_paths(ganesha)
    assert len(live) == N - 2
    assert not {str(tmpfs_volume / "d15"), str(tmpfs_volume / "d25")} & set(live.values())
    assert nfs_cat(ganesha, "/d26/f.txt").stdout == "file 26\n"


def _ro_for(path, opts):
    """render_batch, but the block of the export of `path` grants its client RO (what a
    Ganesha that read the block otherwise would hold)."""
    from ganesha_ha.backends import ganesha_batch

    def render(exports, mountpoint, _opts):
        batch = ganesha_batch.render_batch(exports, mountpoint, opts)
        lines = batch.text.splitlines(keepends=True)
        for span in batch.spans:
            if span.export.path == path:   # the only RW of the block is its client's
                for n in range(span.first - 1, span.last):
                    lines[n] = lines[n].replace("Access_Type = RW;", "Access_Type = RO;")
        return ganesha_batch.Batch("".join(lines), batch.spans)
    return render


def test_full_size_batches_keep_below_the_bus_limit_and_a_refused_block_stays_its_own(ganesha, tmpfs_volume,
                                                                                      monkeypatch):
    """250 exports in batches of BATCH_MAX (100), export #150's block refused inside its batch:
    with two AddExports, a read-back and the refused batch's own calls on the way together, the
    bus's 128 pending replies per connection are never reached; #150 fails alone, the 249 others
    are live and read back."""
    from ganesha_ha.backends.ganesha_batch import BATCH_MAX
    from ganesha_ha.clientspec import parse_clients
    from ganesha_ha.model import Export, KnfsdOptions, new_fsid
    from ganesha_ha.record import replace
    from ganesha_ha.registry import Registry

    assert BATCH_MAX == 100
    monkeypatch.setattr("ganesha_ha.backends.ganesha_changes.require_export_directory", lambda path, server: None)
    n = 250
    registry = Registry(tmpfs_volume)
    state = registry.init("ganesha", (3000, 3999), 1000)
    clients = parse_clients(["127.0.0.1(rw)"])
    exports = []
    for i in range(1, n + 1):
        if i != 150:   # its directory is gone when Ganesha loads its block
            (tmpfs_volume / f"d{i}").mkdir()
        exports.append(Export(path=f"d{i}", export_id=3000 + i, knfsd=KnfsdOptions(new_fsid()), pseudo=f"/d{i}",
                              clients=clients))
    with registry.locked():
        registry.save(replace(state, exports=tuple(exports)))
    volume = Volume(tmpfs_volume, ganesha.settings(), backend=GaneshaBackend(ganesha.settings()))
    result = volume.start()
    assert [f.export.path for f in result.failed] == ["d150"], result.failed
    assert "Export_Id 3150" in str(result.failed[0].error)
    assert result.applied == n - 1
    assert live_paths(ganesha) == {e.export_id: str(tmpfs_volume / e.path) for e in exports if e.path != "d150"}
    assert volume.monitor().exports == n
    assert volume.stop() == n - 1 and live_paths(ganesha) == {}
