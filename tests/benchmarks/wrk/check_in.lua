-- POST /api/v1/licenses/check-in with an existing key and its activated fingerprint,
-- picked at random per request among every line of the data file (args[1]).
-- Lines: "<license key> <fingerprint>". args[2]: the product code.
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local pairs_ = {}
local product

function init(args)
  for line in io.lines(args[1]) do
    local key, fp = line:match("^(%S+) (%S+)$")
    table.insert(pairs_, {key, fp})
  end
  product = args[2]
  math.randomseed(os.time() * 100 + id)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local p = pairs_[math.random(#pairs_)]
  local body = string.format('{"license_key":"%s","product":"%s","fingerprint":"%s"}',
    p[1], product, p[2])
  return wrk.format(nil, "/api/v1/licenses/check-in", nil, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"status_errors":%d,"connect_errors":%d,"read_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.timeout))
end
