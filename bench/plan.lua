-- wrk script: replays the requests of a plan file in a loop and writes the figures as JSON.
-- BENCH_PLAN: one request a line, fields separated by tabs: method, path, bearer token or "-",
-- form body or "-". BENCH_OUT: where done() writes {requests, seconds, errors, p50_ms, p99_ms}.
local requests = {}
local index = 0

function init(args)
  for line in io.lines(os.getenv("BENCH_PLAN")) do
    local method, path, token, body = line:match("^(%S+)\t(%S+)\t(%S+)\t(.*)$")
    local headers = {}
    if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
    if body == "-" then
      body = nil
    else
      headers["Content-Type"] = "application/x-www-form-urlencoded"
    end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write(string.format(
    '{"requests": %d, "seconds": %f, "errors": %d, "status_errors": %d,'
      .. ' "p50_ms": %f, "p99_ms": %f, "max_ms": %f}',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout + e.status,
    e.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  out:close()
end
