import re, ipaddress
OCT = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"^{OCT}(?:\.{OCT}){{3}}$")
IPV4_CIDR = re.compile(rf"^{OCT}(?:\.{OCT}){{3}}/(?:3[0-2]|[12][0-9]|[1-9])$")
IPV6_CHARS = re.compile(r"^[0-9A-Fa-f:.]+$")
V6_PREFIX = re.compile(r"^/(?:[1-9][0-9]?)$")   # lexer: 1..99
HOST = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
BOOL = re.compile(r"^(?:yes|no|true|false|on|off)$", re.I)
WC = r"[A-Za-z0-9._-]"; WP = rf"(?:\[!?{WC}+\]|\*|\?)"
WILDCARD = re.compile(rf"^(?:{WC}*{WP})+{WC}*$")
TOKEN_CHARS = re.compile(r"^[A-Za-z_?][A-Za-z0-9._-]*$")
NETGROUP = re.compile(r"^@[A-Za-z_][A-Za-z0-9_.-]*$")
def classify(s):
    if s in ("*", "0.0.0.0"): return "any"
    if IPV4.match(s): return "ipv4"
    if IPV4_CIDR.match(s): return "ipv4-cidr"
    a, _, p = s.partition("/")
    if ":" in a and IPV6_CHARS.match(a):
        try: ipaddress.IPv6Address(a)
        except ValueError: return None
        if not p: return "ipv6"
        return "ipv6-cidr" if V6_PREFIX.match("/" + p) else None
    if NETGROUP.match(s) and len(s) <= 64: return "netgroup"
    if HOST.match(s) and not BOOL.match(s): return "host"
    if WILDCARD.match(s) and not TOKEN_CHARS.match(s) and len(s) <= 64: return "wildcard"
    return None
ok = ["127.0.0.1","10.0.0.0/8","10.1.2.3/8","10.0.0.0/32","*","0.0.0.0","::1","::","fe80::1","2001:DB8::1","1:2:3:4:5:6:7:8",
      "::ffff:10.0.0.1","2001:db8::/32","2001:db8::/64","2001:db8::/99","::/1","2001:db8::1/64","localhost","LOCALHOST","localhost.",
      "nosuchhost.invalid","host-1.invalid","host_1","*.example.com","node?","node[0-9]","node[!0-9]","127.0.0.*","127.0.0.?","1*","*ocalhost","@ng","@ng.x-y"]
bad = ["10.0.0.0/33","10.0.0.0/99","10.0.0.0/0","10.0.0.0/100","10.0.0.0/08","999.1.1.1","1.2.3","010.0.0.1","0.0.0.0/0",
       "2001:db8::/100","2001:db8::/128","::/0","2001:db8::/129","fe80::1%eth0","[::1]","1host","3com.example","-host",'"localhost"',"'localhost'",
       "?ode","@1ng","@","/foo","1.5","yes","127.0.0.1 127.0.0.2","127.0.0.1,",""]
for s in ok: assert classify(s), s
for s in bad: assert not classify(s), (s, classify(s))
print("regexes agree with the measured accept/reject sets:", len(ok), "accepted,", len(bad), "rejected")
