# Peak memory of one 30 MB ingest batch (docs/security.md, JSON-array ingest).
# Usage: start `rampart serve --addr 127.0.0.1:3999` on a fresh database with
# RAMPART_ADMIN_PASSWORD=mem-admin-password-1, then: python3 docs/scripts/ingest-memory.py PID [ndjson]
# It prints the server's VmHWM (peak RSS) before and after one batch; restart the server between runs.
import json, urllib.request, http.cookiejar, sys, time, subprocess
base="http://127.0.0.1:3999"
cj=http.cookiejar.CookieJar(); op=urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cj))
def req(path, data=None, headers={}, method=None):
    r=urllib.request.Request(base+path, data=data, headers=dict({"Origin":base,"Accept":"application/json"},**headers), method=method)
    return op.open(r)
req("/auth/login", b"name=admin&password=mem-admin-password-1", {"Content-Type":"application/x-www-form-urlencoded"})
tok=json.load(req("/api/v1/tokens", json.dumps({"name":"m","scopes":["ingest","read","drive"]}).encode(), {"Content-Type":"application/json"}))["secret"]
pid=sys.argv[1]
def hwm():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmHWM") or l.startswith("VmRSS"): print(l.strip(), end="  ")
    print()
now=int(time.time()*1000)
events=[]
i=0; size=0
while size < 30*1024*1024:
    e={"timestamp":now-1000-(i%500000),"event_id":f"mem-{i}","variant":"async" if i%10==0 else "sync","outcome":"success","latency_ms":812.5,"memory_mb":38.2,"provider":"kimi","file_type":"csv","size_bytes":1000+i}
    s=json.dumps(e); events.append(s); size+=len(s)+1; i+=1
ndjson = len(sys.argv) > 2 and sys.argv[2] == "ndjson"
body=("\n".join(events) if ndjson else "["+",".join(events)+"]").encode()
print("body", len(body)/1048576, "MB,", i, "events")
hwm()
t=time.time()
r=urllib.request.Request(base+"/api/v1/events", data=body, headers={"Authorization":"Bearer "+tok,"Content-Type":"application/x-ndjson" if ndjson else "application/json"})
print(json.load(urllib.request.urlopen(r)) | {"took": round(time.time()-t,1)})
hwm()
