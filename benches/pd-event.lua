-- wrk script: every request a new PagerDuty Events v2 trigger (its own
-- dedup_key) for the routing key the benchmark sets (a dummy value).
local n = 0
local tag = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  local body = '{"routing_key":"benchbenchbenchbenchbenchbench01","event_action":"trigger","dedup_key":"w'
    .. tag .. "-" .. n
    .. '","payload":{"summary":"Disk above 95 % on the PDF host","source":"pdf-host","severity":"critical"}}'
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
