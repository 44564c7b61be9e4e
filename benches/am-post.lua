-- wrk script: every request an Alertmanager v4 notification of 100 new
-- alerts (own fingerprints), with the benchmark's dummy bearer token.
local n = 0
-- Seeded per run: LuaJIT's generator starts alike in every process, and a
-- fingerprint from an earlier run would update that alert, not add one.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local tag = string.format("%08x", math.random(0, 0x7fffffff))
local head = '{"version":"4","status":"firing","receiver":"opsbot","groupKey":"{}:{}","alerts":['
local alert = '{"status":"firing","labels":{"alertname":"HighErrorRate","system":"chat","severity":"critical","instance":"%s"},'
  .. '"annotations":{"summary":"5xx rate above 0.05 req/s"},"startsAt":"2026-12-01T21:58:30Z",'
  .. '"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.internal:9090/graph","fingerprint":"%s"}'
request = function()
  n = n + 1
  local list = {}
  for i = 1, 100 do
    local id = string.format("%s%08x%03x", tag, n, i)
    list[i] = string.format(alert, id, id)
  end
  local body = head .. table.concat(list, ",") .. "]}"
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer bench-alert-token",
  }, body)
end
