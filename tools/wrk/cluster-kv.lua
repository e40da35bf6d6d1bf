-- wrk script for tools/bench-cluster.sh: GET, PUT or a GET/PUT mix against
-- ONE ringkv node, with the per-request quorum in the query string, writing
-- its full latency histogram so that the runs against the three nodes of a
-- cluster (one wrk per node, started together) can be merged exactly.
--
-- Why not the shared bench/wrk/kv-*.lua: they append the key to the URL path
-- (so no ?r=/?w=), have no mix, and print percentiles only; percentiles of
-- three wrk processes cannot be merged, histograms can. Keys and values are
-- those of the shared common.lua (same keys as its preload).
--
--   KV_OP=get|put|mix   (get)      KV_PUT_PCT  share of PUTs in mix (10)
--   KV_R, KV_W          ?r= on GETs, ?w= on PUTs (unset: the node's default)
--   KV_HIST=FILE        write "RESULT ..." and "H <usec> <count>" lines there
--   BENCH_WRK_DIR       folder of the shared common.lua (../shared/bench/wrk)
--   plus common.lua's KV_KEYS, KV_VALUE_SIZE, KV_KEY_PREFIX, KV_SEED
--   wrk -t1 -c11 -d10s -s tools/wrk/cluster-kv.lua http://127.0.0.1:18301/bench/key
local kv = dofile((os.getenv("BENCH_WRK_DIR") or "../shared/bench/wrk") .. "/common.lua")

local op = os.getenv("KV_OP") or "get"
local put_pct = tonumber(os.getenv("KV_PUT_PCT") or "10")
local r, w = os.getenv("KV_R") or "", os.getenv("KV_W") or ""
local hist = os.getenv("KV_HIST")
local rq = r ~= "" and ("?r=" .. r) or ""
local wq = w ~= "" and ("?w=" .. w) or ""

local body = '{"value":"' .. kv.value() .. '"}'
local headers = { ["Content-Type"] = "application/json" }
local gets, puts, n = {}, {}, kv.keys

function init(args)
  local base = kv.base_path()
  for i = 0, n - 1 do
    local path = base .. "/" .. kv.key(i)
    if op ~= "put" then gets[i] = wrk.format("GET", path .. rq) end
    if op ~= "get" then puts[i] = wrk.format("PUT", path .. wq, headers, body) end
  end
  -- each wrk process gets its own stream of keys (KV_SEED differs per node)
  math.randomseed(kv.seed)
end

if op == "get" then
  function request() return gets[math.random(0, n - 1)] end
elseif op == "put" then
  function request() return puts[math.random(0, n - 1)] end
else
  function request()
    if math.random(1, 100) <= put_pct then return puts[math.random(0, n - 1)] end
    return gets[math.random(0, n - 1)]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local line = string.format(
    "RESULT rps=%.1f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d duration_s=%.3f "
    .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.requests, secs,
    e.connect, e.read, e.write, e.status, e.timeout)
  io.write(line)
  if hist then
    local f = assert(io.open(hist, "w"))
    f:write(line)
    -- latency(i): the i-th distinct latency (usec) and how many requests took it
    for i = 1, #latency do
      local v, c = latency(i)
      f:write(string.format("H %d %d\n", v, c))
    end
    f:close()
  end
end
