"""A stand-in for ganesha.nfsd on a private bus that answers some ExportMgr calls and never
answers others: `python fake_ganesha.py BUS_ADDRESS HANG_METHOD[,...]`.

Owns org.ganesha.nfsd and serves ShowExports/AddExport/UpdateExport/RemoveExport (recording
what it was asked in memory); a method named on the command line gets no reply, ever (its
reply callbacks are kept, so the call is left pending as a stuck daemon leaves it). Prints
"ready" on stdout once it owns the name.
"""
import re
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = "org.ganesha.nfsd.exportmgr"


class ExportMgr(dbus.service.Object):
    def __init__(self, conn, hang, bus_name):
        super().__init__(conn, "/org/ganesha/nfsd/ExportMgr")
        self.bus_name = bus_name    # the well-known name lasts as long as a reference to it
        self.hang = hang
        self.exports = {}
        self.pending = []

    def _maybe_hang(self, method, ok, err):
        if method in self.hang:
            self.pending.append((ok, err))
            return True
        return False

    @dbus.service.method(IFACE, in_signature="", out_signature="(tt)a(qs)", async_callbacks=("ok", "err"))
    def ShowExports(self, ok, err):
        if not self._maybe_hang("ShowExports", ok, err):
            ok((dbus.UInt64(0), dbus.UInt64(0)), dbus.Array(sorted(self.exports.items()), signature="(qs)"))

    @dbus.service.method(IFACE, in_signature="ss", out_signature="s", async_callbacks=("ok", "err"))
    def AddExport(self, conf, expr, ok, err):
        if not self._maybe_hang("AddExport", ok, err):
            export_id = int(expr.split("=")[1].rstrip(")"))
            self.exports[export_id] = re.search(r'Path = "([^"]*)"', open(conf).read()).group(1)
            ok("1 exports added")

    @dbus.service.method(IFACE, in_signature="ss", out_signature="s", async_callbacks=("ok", "err"))
    def UpdateExport(self, conf, expr, ok, err):
        if not self._maybe_hang("UpdateExport", ok, err):
            ok("1 exports updated")

    @dbus.service.method(IFACE, in_signature="q", out_signature="", async_callbacks=("ok", "err"))
    def RemoveExport(self, export_id, ok, err):
        if not self._maybe_hang("RemoveExport", ok, err):
            self.exports.pop(int(export_id), None)
            ok()


def main():
    address, hang = sys.argv[1], set(sys.argv[2].split(","))
    DBusGMainLoop(set_as_default=True)
    conn = dbus.bus.BusConnection(address)
    ExportMgr(conn, hang, dbus.service.BusName("org.ganesha.nfsd", conn))
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
