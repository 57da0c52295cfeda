import sys, json
sys.path.insert(0, "/tmp/gha-facts")
from glab import Lab
with Lab("exp_a3", grace_wait=False) as lab:
    d = lab.dir / "d"; d.mkdir()
    good = f"EXPORT {{ Export_Id = 51; Path = {d}; Pseudo = /x51; Access_Type = RW; FSAL {{ Name = VFS; }} CLIENT {{ Clients = 127.0.0.1; }} }}\n"
    cases = {
      "missing ; after Pseudo": good.replace("Pseudo = /x51;", "Pseudo = /x51"),
      "unbalanced brace": good.rstrip().rstrip("}") + "\n",
      "expr id not in file": good.replace("Export_Id = 51", "Export_Id = 52"),
      "unknown export param": good.replace("Access_Type = RW;", "Access_Type = RW; Bogus = 1;"),
      "bad Access_Type token": good.replace("Access_Type = RW;", "Access_Type = RWX;"),
      "empty file": "",
      "Clients at EXPORT level": good.replace("Access_Type = RW;", "Access_Type = RW; Clients = 127.0.0.1;"),
    }
    for name, text in cases.items():
        r = lab.add(text, 51)
        print(json.dumps({"case": name, "reply": r}))
        if r[0] == "OK": lab.remove(51)
