-- wrk script: every request a fresh signed Slack slash command (its own
-- trigger_id, so none is a replay), signed per request with HMAC-SHA256 from
-- libcrypto through LuaJIT FFI. The secret is the benchmark's own dummy value.
local ffi = require("ffi")
ffi.cdef[[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
]]
local crypto = ffi.load("crypto")
local secret = "peer-secret-123"
local out = ffi.new("unsigned char[32]")
local outlen = ffi.new("unsigned int[1]")
local n = 0
local ts = tostring(os.time())
-- Every run its own trigger ids: LuaJIT's generator starts from the same
-- seed in every process, and a trigger id seen in an earlier run (within
-- the replay window) is a replay, acknowledged without being stored.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local function hex(buf, len)
  local t = {}
  for i = 0, len - 1 do t[#t + 1] = string.format("%02x", buf[i]) end
  return table.concat(t)
end
request = function()
  n = n + 1
  local body = "token=x&team_id=T1&team_domain=t&channel_id=C1&channel_name=ops&user_id=U1&user_name=u&command=%2Fops&text=health&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fr&trigger_id=" .. ts .. "." .. tostring(n) .. "." .. tostring(math.random(1, 1000000000))
  local base = "v0:" .. ts .. ":" .. body
  crypto.HMAC(crypto.EVP_sha256(), secret, #secret, base, #base, out, outlen)
  local sig = "v0=" .. hex(out, outlen[0])
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Slack-Request-Timestamp"] = ts,
    ["X-Slack-Signature"] = sig,
  }, body)
end
