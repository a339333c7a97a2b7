-- The requests of the benchmark, for wrk (works against both services: same paths, same bodies).
--   MODE=get_auth        GET with AUTH="Bearer ..."                     (profile)
--   MODE=post_json       POST BODY as JSON                              (token verify, login)
--   MODE=refresh_rotate  POST {"refresh": <next token of TOKENS_FILE>}  (each token used once)
--   MODE=register        POST a registration with a new username per request (PREFIX, PASSWORD)
-- done() prints one line "BENCH_JSON {...}" with the figures bench/report.py reads.
local mode = os.getenv("MODE") or "get_auth"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  wrk.headers["Content-Type"] = "application/json"
  local auth = os.getenv("AUTH")
  if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
  if mode == "get_auth" then
    wrk.method = "GET"
  else
    wrk.method = "POST"
    wrk.body = os.getenv("BODY") or "{}"
  end
  idx = 0
  if mode == "refresh_rotate" then
    -- Threads take disjoint slices: token i goes to thread i mod WRK_THREADS.
    local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
    tokens = {}
    local i = 0
    for line in io.lines(os.getenv("TOKENS_FILE")) do
      if i % nthreads == tid then table.insert(tokens, line) end
      i = i + 1
    end
  end
  prefix = (os.getenv("PREFIX") or "bench") .. "t" .. tid .. "n"
  password = os.getenv("PASSWORD") or "Bench-pass!9x"
end

-- Static requests (profile, verify, login) need no request() at all: wrk then reuses one buffer.
if mode == "refresh_rotate" or mode == "register" then
  function request()
    idx = idx + 1
    if mode == "refresh_rotate" then
      -- Past the last token the request fails visibly (401), it is never a reused token.
      return wrk.format(nil, nil, nil, '{"refresh":"' .. (tokens[idx] or "exhausted") .. '"}')
    end
    return wrk.format(nil, nil, nil, '{"username":"' .. prefix .. idx .. '","password1":"' .. password
      .. '","password2":"' .. password .. '"}')
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"non_2xx":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
