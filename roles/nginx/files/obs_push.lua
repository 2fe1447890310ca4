-- The push route's identity and body rules (roles/nginx; nginx-module-lua).
--
-- identity(): the store a request's Authorization header belongs to, or "".
--   The header is looked up byte for byte: a credential is known by the SHA-1
--   of its exact header value ("Basic " .. base64(store .. ":" .. token)),
--   so "basic ...", two spaces, a missing padding or any other spelling of a
--   known credential is not known, and the tokens are never on disk. Decided
--   once, in the rewrite phase; the rate limit, the tenant header, the log and
--   guard() all use that one value.
-- guard(): refuses, before Loki sees it, a push that is not the pushing
--   store's: no or unknown credential (401), not Loki's JSON format (415),
--   a body that does not decode (400), and any stream whose `store` label is
--   missing or another store's (400, naming the stream and the label).
--   The body is forwarded unchanged (still gzip when it came gzip).
local cjson = require "cjson.safe"
local zlib = require "zlib"

local M = {}
local digests = {}   -- binary SHA-1 of the exact header -> store id
local INFLATE_STEP = 16384

-- Runs in the master process (init_by_lua), as root: the credential file is
-- root-only. Workers inherit the table.
function M.load(path)
  local known = dofile(path)
  for hex, store in pairs(known) do
    digests[(hex:gsub("..", function(byte) return string.char(tonumber(byte, 16)) end))] = store
  end
end

function M.identity()
  local header = ngx.var.http_authorization
  if not header then
    return ""
  end
  return digests[ngx.sha1_bin(header)] or ""
end

local function refuse(status, message)
  ngx.status = status
  ngx.header["Content-Type"] = "text/plain; charset=utf-8"
  ngx.say(message)
  return ngx.exit(status)
end

local function inflate(body, limit)
  local stream = zlib.inflate()
  local parts, total = {}, 0
  for pos = 1, #body, INFLATE_STEP do
    local ok, out = pcall(stream, body:sub(pos, pos + INFLATE_STEP - 1))
    if not ok then
      return nil, 400, "the body is not valid gzip"
    end
    total = total + #out
    if total > limit then
      return nil, 413, "the decompressed body is larger than " .. limit .. " bytes: send smaller batches"
    end
    parts[#parts + 1] = out
  end
  return table.concat(parts)
end

function M.guard(max_decoded)
  local store = ngx.var.obs_store
  if store == "" then
    ngx.header["WWW-Authenticate"] = 'Basic realm="obs push"'
    return refuse(401, "unknown push credential: use your store bundle's LOKI_USERNAME and LOKI_PASSWORD")
  end
  local ctype = (ngx.var.content_type or ""):lower()
  if not (ctype == "application/json" or ctype:find("^application/json%s*;")) then
    return refuse(415, "Content-Type " .. (ngx.var.content_type or "(none)") .. " is not accepted: this edge takes "
      .. "Loki's JSON push format only (Content-Type: application/json, optionally Content-Encoding: gzip); "
      .. "protobuf/snappy pushes are refused")
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local path = ngx.req.get_body_file()   -- over client_body_buffer_size
    if path then
      local file = io.open(path, "rb")
      body = file:read("*a")
      file:close()
    end
  end
  if not body or body == "" then
    return refuse(400, "empty push body")
  end
  local encoding = (ngx.var.http_content_encoding or ""):lower()
  if encoding == "gzip" then
    local decoded, status, message = inflate(body, max_decoded)
    if not decoded then
      return refuse(status, message)
    end
    body = decoded
  elseif encoding ~= "" and encoding ~= "identity" then
    return refuse(415, "Content-Encoding " .. encoding .. " is not accepted: send gzip or no encoding")
  end
  local push = cjson.decode(body)
  if type(push) ~= "table" or type(push.streams) ~= "table" then
    return refuse(400, 'not a Loki JSON push: expected {"streams": [{"stream": {...}, "values": [...]}]}')
  end
  for i, stream in ipairs(push.streams) do
    local labels = type(stream) == "table" and stream.stream or nil
    local claimed = type(labels) == "table" and labels.store or nil
    if claimed == nil then
      return refuse(400, "stream " .. i .. ' has no store label: every stream must carry store="' .. store .. '"')
    end
    if claimed ~= store then
      return refuse(400, "stream " .. i .. ': label store="' .. tostring(claimed) .. '" is not the pushing store '
        .. store .. ": a store pushes its own logs only")
    end
  end
end

return M
