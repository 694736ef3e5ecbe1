-- wrk script of the benchmark harness (bench/load.py writes the arguments).
--
-- Arguments after `--`: METHOD PATH BUDGET SECONDS TAIL_PATH
--   METHOD, PATH  the measured request ("POST /counter", "GET /health/live")
--   BUDGET        measured requests per thread (0: no bound)
--   SECONDS       measured time per thread (0: no bound)
--   TAIL_PATH     a GET whose answer is {"status":"alive"}: sent instead of the measured request
--                 once the budget or the time is spent, while the last measured requests are in
--                 flight. wrk cannot idle a connection, and a POST abandoned in flight may have been
--                 counted by the server without wrk counting its answer; a GET changes nothing.
--                 A thread stops as soon as every measured request it sent has its answer, and
--                 says so on stderr; bench/load.py then stops wrk with SIGINT.
--
-- done() prints one line: "BENCH_JSON {...}" with the measured answers (2xx and not), the
-- socket errors, the measured time and the latency percentiles (microseconds).

local has_ffi, ffi = pcall(require, "ffi")
local now, os_thread
if has_ffi then
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
    unsigned long pthread_self(void);
  ]]
  local ts = ffi.new("bench_timespec")
  now = function()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
  os_thread = function()
    return tonumber(ffi.C.pthread_self())
  end
else
  now = os.time -- one-second resolution, still correct
  os_thread = nil
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("index", thread_count)
  table.insert(threads, thread)
end

function init(args)
  method = args[1] or "GET"
  path = args[2] or "/"
  budget = tonumber(args[3] or "0")
  seconds = tonumber(args[4] or "0")
  tail_path = args[5] or "/health/live"
  local headers = {}
  local body = nil
  if method == "POST" then
    headers["Content-Length"] = "0"
  end
  measured_request = wrk.format(method, path, headers, body)
  tail_request = wrk.format("GET", tail_path)
  draining = false
  stopped = false
  sent = 0
  answered = 0
  ok = 0
  failed = 0
  tail = 0
  -- wrk calls request() once on the first thread's state from its main thread, before any
  -- connection, to check the request (script_verify_request): that call sends nothing.
  setup_os_thread = os_thread and os_thread() or nil
  verify_pending = index == 1
  started = now()
  finished = started
  deadline = seconds > 0 and started + seconds or nil
end

function request()
  if setup_os_thread ~= nil then
    if os_thread() == setup_os_thread then
      return measured_request
    end
  elseif verify_pending then
    verify_pending = false
    return measured_request
  end
  if not draining then
    if (budget > 0 and sent >= budget) or (deadline ~= nil and now() >= deadline) then
      draining = true
    end
  end
  if draining then
    if method == "GET" then
      return measured_request -- nothing to protect: the thread stops at the next answer
    end
    return tail_request
  end
  sent = sent + 1
  return measured_request
end

local function stop()
  stopped = true
  finished = now()
  io.stderr:write("BENCH_THREAD_DONE " .. index .. "\n")
  io.stderr:flush()
  wrk.thread:stop()
end

function response(status, headers, body)
  if stopped then
    return -- answers read in the same loop turn as the stop: drain GETs only
  end
  if draining then
    if method == "GET" then
      stop()
      return
    end
    if body ~= nil and string.find(body, '"alive"', 1, true) then
      tail = tail + 1
      if answered >= sent then
        stop()
      end
      return
    end
  end
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    failed = failed + 1
  end
  finished = now()
  if draining and answered >= sent then
    stop()
  end
end

function done(summary, latency, requests)
  local sum_ok, sum_failed, sum_sent, sum_tail = 0, 0, 0, 0
  local longest = 0
  for _, thread in ipairs(threads) do
    sum_ok = sum_ok + thread:get("ok")
    sum_failed = sum_failed + thread:get("failed")
    sum_sent = sum_sent + thread:get("sent")
    sum_tail = sum_tail + thread:get("tail")
    local elapsed = thread:get("finished") - thread:get("started")
    if elapsed > longest then
      longest = elapsed
    end
  end
  local e = summary.errors
  local fields = {
    string.format('"ok":%d', sum_ok),
    string.format('"failed":%d', sum_failed),
    string.format('"sent":%d', sum_sent),
    string.format('"tail":%d', sum_tail),
    string.format('"elapsed_s":%.6f', longest),
    string.format('"wrk_duration_us":%d', summary.duration),
    string.format('"wrk_requests":%d', summary.requests),
    string.format('"connect_errors":%d', e.connect),
    string.format('"read_errors":%d', e.read),
    string.format('"write_errors":%d', e.write),
    string.format('"timeouts":%d', e.timeout),
    string.format('"status_errors":%d', e.status),
    string.format('"p50_us":%d', latency:percentile(50)),
    string.format('"p90_us":%d', latency:percentile(90)),
    string.format('"p99_us":%d', latency:percentile(99)),
    string.format('"p999_us":%d', latency:percentile(99.9)),
    string.format('"mean_us":%.1f', latency.mean),
    string.format('"max_us":%d', latency.max),
    string.format('"monotonic_clock":%s', has_ffi and "true" or "false"),
  }
  io.write("BENCH_JSON {" .. table.concat(fields, ",") .. "}\n")
end
