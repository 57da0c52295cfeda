import sys, json
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab, py

SPECS = [
 # ipv4
 "127.0.0.1", "10.0.0.0/8", "10.1.2.3/8", "10.0.0.0/32", "10.0.0.0/33", "10.0.0.0/99", "10.0.0.0/0", "10.0.0.0/100",
 "10.0.0.0/08", "999.1.1.1", "1.2.3", "010.0.0.1", "0.0.0.0", "0.0.0.0/0", "*",
 # ipv6
 "::1", "::", "fe80::1", "2001:DB8::1", "1:2:3:4:5:6:7:8", "::ffff:10.0.0.1", "2001:db8::/32", "2001:db8::/64",
 "2001:db8::/99", "2001:db8::/100", "2001:db8::/128", "::/0", "::/1", "2001:db8::/129", "fe80::1%eth0", "[::1]",
 "2001:db8:0:0:0:0:0:1", "2001:db8::1/64",
 # hosts
 "localhost", "LOCALHOST", "localhost.", "nosuchhost.invalid", "1host", "3com.example", "host-1.invalid", "host_1", "-host",
 '"localhost"', "'localhost'", '"127.0.0.1"',
 # wildcards
 "*.example.com", "node?", "?ode", "node[0-9]", "node[!0-9]", "127.0.0.*", "127.0.0.?", "1*", "*ocalhost",
 # netgroups
 "@ng", "@ng.x-y", "@1ng", "@",
 # other
 "/foo", "1.5", "yes", "127.0.0.1 127.0.0.2", "127.0.0.1,", "",
]

def block(eid, spec, path):
    return f"""EXPORT {{
  Export_Id = {eid}; Path = {path}; Pseudo = /e{eid};
  Access_Type = None; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  FSAL {{ Name = VFS; }}
  CLIENT {{ Clients = {spec}; Access_Type = RW; }}
}}
"""

with Lab("exp_a") as lab:
    data = lab.dir / "data"; data.mkdir()
    out = []
    for i, spec in enumerate(SPECS):
        eid = 100 + i
        r = lab.add(block(eid, spec, data), eid)
        d = lab.display(eid) if r[0] == "OK" else None
        clients = [c[0] for c in d[4]] if d and d[0] != "ERR" else None
        if r[0] == "OK":
            lab.remove(eid)
        out.append({"spec": spec, "reply": r, "clients": clients, "display": d if spec in ("127.0.0.1","10.0.0.0/8","::1","2001:db8::/64","*","@ng","node?") else None})
        print(json.dumps(out[-1]), flush=True)
