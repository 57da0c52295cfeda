"""Client specs against NFS-Ganesha 4.3's config lexer: the ones check_export refuses (with
words of the reason and the spellings it offers instead) and ones it lets through. Shared by
tests/unit/test_ganesha_clients.py (the rule) and tests/server/test_ganesha_grants.py (each
row against the real ganesha.nfsd)."""

# spec -> (words of the reason, spellings offered instead: each must pass both checks)
REFUSED = {
    "2001:db8::/122": ("longer than /99", ["2001:db8::/99", "2001:db8::3f"]),
    "2001:db8::/100": ("longer than /99", ["2001:db8::/99"]),
    "2001:db8::1/128": ("longer than /99", ["2001:db8::1"]),
    "2001:db8::/126": ("longer than /99", ["2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"]),
    "::/0": ("/0 prefix", ["::/1", "8000::/1", "*"]),
    "0.0.0.0/0": ("/0 prefix", ["0.0.0.0/1", "128.0.0.0/1", "*"]),
    "3com.example": ("start with a letter", ["[3]com.example"]),
    "1host": ("start with a letter", ["[1]host"]),
    "yes": ("boolean", ["[y]es"]),
    "OFF": ("boolean", ["[o]ff"]),
    "?ode": ("leading '?'", ["[a-z0-9._-]ode"]),
    "::ffff:10.0.0.1": ("IPv4-mapped", ["10.0.0.1"]),
    "@" + "n" * 64: ("at most 63", []),
    "a" * 64 + "*": ("at most 64", []),
}
ACCEPTED = ["*", "127.0.0.1", "10.0.0.0/8", "10.0.0.0/32", "128.0.0.0/1", "::1", "2001:db8::/99", "::/1",
            "localhost", "host-1.example", "yesterday", "on.example", "*.example.com", "node?", "node[0-9]",
            "node[!0-9]", "127.0.0.*", "1*", "@ng", "@ng.x-y", "@" + "n" * 63, "a" * 63 + "*"]


