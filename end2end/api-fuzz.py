"""Schema-driven API fuzzing (issue 19): schemathesis against a live Rampart, from the OpenAPI
document the server serves, with an admin's token holding every scope. Fails on any 5xx or on
a response that contradicts the document. Bounded in time for CI.

Usage: api-fuzz.py BASE_URL ADMIN_PASSWORD [SECONDS]   (run by `cargo xtask test`)
"""

import http.cookiejar
import json
import os
import subprocess
import sys
import urllib.request

base, password = sys.argv[1], sys.argv[2]
seconds = sys.argv[3] if len(sys.argv) > 3 else "60"

jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def call(path, data, content_type):
    request = urllib.request.Request(
        base + path, data=data, headers={"Origin": base, "Accept": "application/json", "Content-Type": content_type}
    )
    return opener.open(request)


call("/auth/login", f"name=admin&password={password}".encode(), "application/x-www-form-urlencoded")
made = call("/api/v1/tokens", json.dumps({"name": "api-fuzz", "scopes": ["ingest", "evaluate", "read", "drive"]}).encode(), "application/json")
token = json.load(made)["secret"]
# Sessions of the admin (for the admin-only routes) are cookie-borne: those routes need a
# same-origin request, which a fuzzer is not; the token covers every machine route.
schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
command = [
    schemathesis, "run", f"{base}/api/v1/openapi.yaml",
    "--url", base,
    "--header", f"Authorization: Bearer {token}",
    "--checks", "not_a_server_error,response_schema_conformance",
    "--max-time", seconds,
    "--max-examples", "25",
    "--seed", "20261203",
    "--workers", "2",
]
sys.exit(subprocess.run(command).returncode)
