-- POST with a JSON body and headers for wrk, taken from the environment:
--   WRK_BODY     the request body (JSON)
--   WRK_HEADERS  extra headers, one "Name: value" per line (e.g. "Authorization: Bearer ...")
--   wrk -t2 -c8 -d10s --latency -s bench/wrk/post.lua http://127.0.0.1:8000/api/v1/agents/1/invoke
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
for line in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end
