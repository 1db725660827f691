-- POST /api/v1/licenses/activate with a fingerprint never sent before: unique per run
-- (args[3], a tag), per thread and per request; licenses taken round-robin from the data
-- file (args[1], one key a line, each with seats to spare). args[2]: the product code.
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

local keys = {}
local product, tag
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    table.insert(keys, (line:match("^(%S+)")))
  end
  product = args[2]
  tag = args[3]
  math.randomseed(os.time() * 100 + id)
  n = math.random(#keys)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local key = keys[(n % #keys) + 1]
  local body = string.format(
    '{"license_key":"%s","product":"%s","fingerprint":"bench-%s-t%d-%d","name":"bench"}',
    key, product, tag, id, n)
  return wrk.format(nil, "/api/v1/licenses/activate", nil, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"status_errors":%d,"connect_errors":%d,"read_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.timeout))
end
