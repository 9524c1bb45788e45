-- @description editorbot: shared library (JSON, spool client, settings, plan checks, applying a plan)
-- @author editorbot
-- @version 0.2.0
-- @noindex
-- @about
--   Library used by the editorbot scripts; it registers no action.
--   Pure-Lua JSON decoding and encoding, the spool client (request files,
--   heartbeat, progress, results, cancel), settings kept with SetExtState,
--   TSV parsing, plan validation and applying a plan to the project.

local M = {}

M.VERSION = "0.1.0"
M.SECTION = "editorbot"            -- ExtState section
M.REQUEST_SCHEMA = "editorbot.spool.request/1"
M.RESULT_SCHEMA = "editorbot.spool.result/1"
M.HEARTBEAT_STALE_S = 5            -- a heartbeat older than this: no server

---------------------------------------------------------------------------
-- JSON
---------------------------------------------------------------------------

-- Decoded JSON null (distinct from a missing key).
M.null = setmetatable({}, { __tostring = function() return "null" end })
-- Metatable of decoded arrays (so an empty one encodes back as []); see M.array.
M.array_mt = {}

local function json_error(text, pos, what)
  local line, col = 1, 1
  for i = 1, math.min(pos - 1, #text) do
    if text:sub(i, i) == "\n" then line, col = line + 1, 1 else col = col + 1 end
  end
  error({ json = true, message = string.format("%s at line %d column %d", what, line, col) }, 0)
end

local function skip_ws(text, pos)
  return text:find("[^ \t\r\n]", pos) or (#text + 1)
end

local function utf8_char(cp)
  return utf8.char(cp)
end

local decode_value

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function decode_string(text, pos)
  -- pos is at the opening quote
  local out, i = {}, pos + 1
  while true do
    local j = text:find('["\\%c]', i)
    if not j then json_error(text, pos, "unterminated string") end
    out[#out + 1] = text:sub(i, j - 1)
    local c = text:sub(j, j)
    if c == '"' then
      return table.concat(out), j + 1
    elseif c == "\\" then
      local e = text:sub(j + 1, j + 1)
      if escapes[e] then
        out[#out + 1] = escapes[e]
        i = j + 2
      elseif e == "u" then
        local hex = text:sub(j + 2, j + 5)
        if not hex:match("^%x%x%x%x$") then json_error(text, j, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = text:match("^\\u(%x%x%x%x)", i)
          local lcp = lo and tonumber(lo, 16)
          if not lcp or lcp < 0xDC00 or lcp > 0xDFFF then json_error(text, j, "lone surrogate") end
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lcp - 0xDC00)
          i = i + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          json_error(text, j, "lone surrogate")
        end
        out[#out + 1] = utf8_char(cp)
      else
        json_error(text, j, "bad escape")
      end
    else
      json_error(text, j, "control character in string")
    end
  end
end

local function decode_number(text, pos)
  local s = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if not s or not s:match("^-?0%f[^%d]") and not s:match("^-?[1-9]") then
    json_error(text, pos, "bad number")
  end
  if not (s:match("^-?%d+$") or s:match("^-?%d+%.%d+$") or s:match("^-?%d+%.?%d*[eE][-+]?%d+$")) then
    json_error(text, pos, "bad number")
  end
  local n = tonumber(s)
  if n == nil then json_error(text, pos, "bad number") end
  return n, pos + #s
end

local function decode_array(text, pos)
  local arr, n = setmetatable({}, M.array_mt), 0
  pos = skip_ws(text, pos + 1)
  if text:sub(pos, pos) == "]" then return arr, pos + 1 end
  while true do
    local v
    v, pos = decode_value(text, pos)
    n = n + 1
    arr[n] = v
    pos = skip_ws(text, pos)
    local c = text:sub(pos, pos)
    if c == "]" then return arr, pos + 1 end
    if c ~= "," then json_error(text, pos, c == "" and "unexpected end of text" or "expected ',' or ']'") end
    pos = skip_ws(text, pos + 1)
  end
end

local function decode_object(text, pos)
  local obj = {}
  pos = skip_ws(text, pos + 1)
  if text:sub(pos, pos) == "}" then return obj, pos + 1 end
  while true do
    if text:sub(pos, pos) ~= '"' then
      json_error(text, pos, pos > #text and "unexpected end of text" or "expected a string key")
    end
    local key
    key, pos = decode_string(text, pos)
    pos = skip_ws(text, pos)
    if text:sub(pos, pos) ~= ":" then json_error(text, pos, "expected ':'") end
    local v
    v, pos = decode_value(text, skip_ws(text, pos + 1))
    obj[key] = v
    pos = skip_ws(text, pos)
    local c = text:sub(pos, pos)
    if c == "}" then return obj, pos + 1 end
    if c ~= "," then json_error(text, pos, c == "" and "unexpected end of text" or "expected ',' or '}'") end
    pos = skip_ws(text, pos + 1)
  end
end

decode_value = function(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then return decode_object(text, pos)
  elseif c == "[" then return decode_array(text, pos)
  elseif c == '"' then return decode_string(text, pos)
  elseif c == "-" or c:match("%d") then return decode_number(text, pos)
  elseif text:sub(pos, pos + 3) == "true" then return true, pos + 4
  elseif text:sub(pos, pos + 4) == "false" then return false, pos + 5
  elseif text:sub(pos, pos + 3) == "null" then return M.null, pos + 4
  elseif c == "" then json_error(text, pos, "unexpected end of text")
  else json_error(text, pos, "unexpected character '" .. c .. "'") end
end

-- Decode a JSON text. Returns value, or nil and a one-line error message.
function M.json_decode(text)
  if type(text) ~= "string" then return nil, "not text" end
  local ok, value, pos = pcall(function()
    local v, p = decode_value(text, skip_ws(text, 1))
    return v, skip_ws(text, p)
  end)
  if not ok then
    if type(value) == "table" and value.json then return nil, value.message end
    return nil, tostring(value)
  end
  if pos <= #text then
    local _, err = pcall(json_error, text, pos, "trailing characters")
    return nil, err.message
  end
  return value
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == M.array_mt then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

-- Mark a table to encode as a JSON array even when empty.
function M.array(t) return setmetatable(t or {}, M.array_mt) end

local function encode(v, out)
  local t = type(v)
  if v == nil or v == M.null then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot encode a non-finite number") end
    if math.type(v) == "integer" then out[#out + 1] = tostring(v)
    else out[#out + 1] = string.format("%.17g", v) end
  elseif t == "string" then out[#out + 1] = encode_string(v)
  elseif t == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("object keys must be strings") end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    error("cannot encode a " .. t)
  end
end

function M.json_encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

---------------------------------------------------------------------------
-- Files
---------------------------------------------------------------------------

M.SEP = package.config:sub(1, 1)

function M.join(...)
  local parts = { ... }
  local s = parts[1]
  for i = 2, #parts do
    if s:sub(-1) == "/" or s:sub(-1) == "\\" then s = s .. parts[i] else s = s .. M.SEP .. parts[i] end
  end
  return s
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Write text to path atomically: a dot-named temp file in the same folder, then rename.
function M.write_atomic(path, text)
  local dir, name = path:match("^(.*[/\\])([^/\\]+)$")
  if not dir then dir, name = "", path end
  local tmp = dir .. "." .. name .. "." .. tostring(math.random(100000, 999999)) .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  f:close()
  if not ok then os.remove(tmp) return nil, werr end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    -- Windows cannot rename over an existing file
    os.remove(path)
    renamed, rerr = os.rename(tmp, path)
  end
  if not renamed then os.remove(tmp) return nil, rerr end
  return true
end

function M.mkdirs(path)
  reaper.RecursiveCreateDirectory(path, 0)
end

-- Quote one argument of an ExecProcess command line: double quotes, which
-- REAPER's command-line splitting understands on every platform (no shell).
function M.shell_quote(s)
  return '"' .. s:gsub('"', '\\"') .. '"'
end

---------------------------------------------------------------------------
-- Settings (ExtState, persistent)
---------------------------------------------------------------------------

M.DEFAULTS = {
  model = "",                  -- "" default model, a .onnx path, or "dp"
  target_duration_s = "",      -- "" keeps the policy's own length
  keep = "",                   -- "A-B;C-D" seconds from the edit's start
  server_cmd = "editorbot",    -- the editorbot executable (path)
  spool_dir = "",              -- "" = <resource path>/editorbot/spool
  timeout_s = "600",           -- give up on a job after this long
  start_timeout_s = "30",      -- wait this long for a server we started
}
M.SETTING_KEYS = { "model", "target_duration_s", "keep", "server_cmd", "spool_dir", "timeout_s", "start_timeout_s" }

function M.load_settings()
  local s = {}
  for _, k in ipairs(M.SETTING_KEYS) do
    local v = reaper.GetExtState(M.SECTION, k)
    if v == nil or v == "" then v = M.DEFAULTS[k] end
    s[k] = v
  end
  if s.spool_dir == "" then s.spool_dir = M.join(reaper.GetResourcePath(), "editorbot", "spool") end
  return s
end

function M.save_settings(s)
  for _, k in ipairs(M.SETTING_KEYS) do
    reaper.SetExtState(M.SECTION, k, tostring(s[k] or ""), true)
  end
end

-- "3-6.5; 10-12" -> {{3, 6.5}, {10, 12}}, or nil and a message.
function M.parse_keep(text)
  local out = M.array()
  for part in (text or ""):gmatch("[^;,]+") do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then
      local a, b = part:match("^([%d.]+)%s*%-%s*([%d.]+)$")
      a, b = tonumber(a), tonumber(b)
      if not a or not b or b <= a then return nil, "keep range '" .. part .. "' is not START-END seconds" end
      out[#out + 1] = M.array({ a, b })
    end
  end
  return out
end

-- Check settings as typed; returns a list of problems (empty when fine).
function M.check_settings(s)
  local problems = {}
  if s.target_duration_s ~= "" then
    local t = tonumber(s.target_duration_s)
    if not t or t <= 0 then problems[#problems + 1] = "target duration must be a positive number of seconds" end
  end
  local _, kerr = M.parse_keep(s.keep)
  if kerr then problems[#problems + 1] = kerr end
  for _, k in ipairs({ "timeout_s", "start_timeout_s" }) do
    local t = tonumber(s[k])
    if not t or t <= 0 then problems[#problems + 1] = k .. " must be a positive number" end
  end
  if s.server_cmd == "" then problems[#problems + 1] = "server command must not be empty" end
  if s.model == "dp" and s.target_duration_s == "" then
    problems[#problems + 1] = "model 'dp' (pure DP retimer) needs a target duration"
  end
  return problems
end

---------------------------------------------------------------------------
-- Spool client
---------------------------------------------------------------------------

function M.spool_paths(root)
  return {
    root = root,
    inbox = M.join(root, "inbox"),
    outbox = M.join(root, "outbox"),
    cancel = M.join(root, "cancel"),
    alive = M.join(root, "alive"),
    heartbeat = M.join(root, "heartbeat"),
  }
end

function M.ensure_spool(p)
  for _, d in ipairs({ p.root, p.inbox, p.outbox, p.cancel, p.alive }) do M.mkdirs(d) end
end

function M.new_request_id()
  local t = reaper.time_precise()
  return string.format("r%d-%06d-%04d", os.time(), math.floor((t % 1) * 1e6), math.random(0, 9999))
end

-- Seconds since the server's last heartbeat (math.huge when there is none).
function M.heartbeat_age(p)
  local hb = M.json_decode(M.read_file(p.heartbeat) or "")
  if type(hb) ~= "table" or type(hb.time) ~= "number" then return math.huge end
  return os.time() - hb.time
end

function M.submit(p, request)
  local path = M.join(p.inbox, request.id .. ".json")
  local ok, err = M.write_atomic(path, M.json_encode(request))
  if not ok then return nil, "cannot write the request " .. path .. ": " .. tostring(err) end
  return path
end

function M.touch_alive(p, id)
  M.write_atomic(M.join(p.alive, id), tostring(os.time()))
end

function M.read_progress(p, id)
  local v = M.json_decode(M.read_file(M.join(p.outbox, id .. ".progress.json")) or "")
  if type(v) == "table" and type(v.fraction) == "number" then return v end
  return nil
end

-- nil while there is no result file; else the text of outbox/ID.json.
function M.read_result_text(p, id)
  return M.read_file(M.join(p.outbox, id .. ".json"))
end

-- Cancel: remove our request if still waiting, leave a cancel file for a server that took it.
function M.cancel(p, id)
  os.remove(M.join(p.inbox, id .. ".json"))
  M.write_atomic(M.join(p.cancel, id), tostring(os.time()))
  os.remove(M.join(p.alive, id))
end

-- Remove the files of a finished request that the client reads.
function M.forget(p, id)
  for _, f in ipairs({ M.join(p.outbox, id .. ".json"), M.join(p.outbox, id .. ".progress.json"), M.join(p.alive, id) }) do
    os.remove(f)
  end
end

function M.server_command(s)
  return M.shell_quote(s.server_cmd) .. " serve --spool " .. M.shell_quote(s.spool_dir)
end

---------------------------------------------------------------------------
-- Checking a result and its plan (before anything in the project changes)
---------------------------------------------------------------------------

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

local function opt(t, key, default)
  local v = t[key]
  if v == nil or v == M.null then return default end
  return v
end

-- Parameters each plan effect takes and their ranges (engine/actions.py EFFECT_RANGES; a
-- cutoff's upper bound depends on the sample rate and is left to the plug-in's range).
M.EFFECT_RANGES = {
  lowpass = { cutoff_hz = { 1, math.huge } }, highpass = { cutoff_hz = { 1, math.huge } },
  bass = { gain_db = { -48, 48 } }, treble = { gain_db = { -48, 48 } },
  reverb = { room_size = { 0, 1 }, wet = { 0, 1 } },
  delay = { delay_s = { 1e-3, 2 }, feedback = { 0, 0.99 }, mix = { 0, 1 } },
  distortion = { drive_db = { 0, 100 } }, compress = { threshold_db = { -100, 0 }, ratio = { 1, 100 } },
  width = { width = { 0, 4 } },
}

-- A checked copy of a segment's effects list, or nil and why.
function M.check_effects(list, where)
  if type(list) ~= "table" then return nil, where .. ".effects is not a list" end
  local out = {}
  for i, e in ipairs(list) do
    local w = string.format("%s.effects[%d]", where, i - 1)
    if type(e) ~= "table" or type(e.name) ~= "string" or type(e.params) ~= "table" then
      return nil, w .. " needs a name and params"
    end
    local ranges = M.EFFECT_RANGES[e.name]
    if not ranges then return nil, w .. ": unknown effect '" .. e.name .. "'" end
    local params = {}
    w = w .. " " .. e.name
    for k, r in pairs(ranges) do
      local v = e.params[k]
      if not finite(v) then return nil, w .. "." .. k .. " is not a finite number" end
      if v < r[1] or v > r[2] then return nil, string.format("%s.%s = %g is outside [%g, %g]", w, k, v, r[1], r[2]) end
      params[k] = v
    end
    for k in pairs(e.params) do
      if not ranges[k] then return nil, w .. ": unknown parameter '" .. tostring(k) .. "'" end
    end
    out[#out + 1] = { name = e.name, params = params }
  end
  return out
end

-- Returns a checked copy of the plan's segments, markers and volume lane, or nil and why.
function M.check_plan(plan)
  if type(plan) ~= "table" then return nil, "the result holds no plan" end
  if type(plan.segments) ~= "table" or #plan.segments == 0 then return nil, "the plan has no segments" end
  local out = { segments = {}, markers = {}, volume = nil, duration_s = 0 }
  for i, s in ipairs(plan.segments) do
    local where = "segments[" .. (i - 1) .. "]"
    if type(s) ~= "table" then return nil, where .. " is not an object" end
    local seg = {
      src_start_s = s.src_start_s, src_end_s = s.src_end_s, dst_start_s = s.dst_start_s,
      rate = opt(s, "rate", 1.0), pitch = opt(s, "pitch_semitones", 0.0), gain_db = opt(s, "gain_db", 0.0),
      fade_in_s = opt(s, "fade_in_s", 0.0), fade_out_s = opt(s, "fade_out_s", 0.0),
      reverse = opt(s, "reverse", false), mute = opt(s, "mute", false),
      action = opt(s, "action", "KEEP"), beat = opt(s, "beat", 0),
    }
    for _, k in ipairs({ "src_start_s", "src_end_s", "dst_start_s", "rate", "pitch", "gain_db", "fade_in_s", "fade_out_s", "beat" }) do
      if not finite(seg[k]) then return nil, where .. "." .. k .. " is not a finite number" end
    end
    if seg.src_start_s < 0 or seg.dst_start_s < 0 then return nil, where .. " starts before 0" end
    if seg.src_end_s <= seg.src_start_s then return nil, where .. ".src_end_s is not after src_start_s" end
    if seg.rate <= 0 then return nil, where .. ".rate must be > 0" end
    if seg.fade_in_s < 0 or seg.fade_out_s < 0 then return nil, where .. " has a negative fade" end
    if type(seg.reverse) ~= "boolean" or type(seg.mute) ~= "boolean" then return nil, where .. ": reverse/mute must be true or false" end
    if type(seg.action) ~= "string" then return nil, where .. ".action must be a string" end
    local effects, eerr = M.check_effects(opt(s, "effects", {}), where)
    if not effects then return nil, eerr end
    seg.effects = effects
    seg.length_s = (seg.src_end_s - seg.src_start_s) / seg.rate
    out.duration_s = math.max(out.duration_s, seg.dst_start_s + seg.length_s)
    out.segments[#out.segments + 1] = seg
  end
  table.sort(out.segments, function(a, b) return a.dst_start_s < b.dst_start_s end)
  for i, m in ipairs(opt(plan, "markers", {})) do
    local where = "markers[" .. (i - 1) .. "]"
    if type(m) ~= "table" or not finite(m.time_s) or type(m.name) ~= "string" then
      return nil, where .. " needs a time_s number and a name string"
    end
    local e = opt(m, "end_s", nil)
    if e ~= nil and (not finite(e) or e < m.time_s) then return nil, where .. ".end_s must be a number >= time_s" end
    out.markers[#out.markers + 1] = { time_s = m.time_s, name = m.name, end_s = e }
  end
  for i, lane in ipairs(opt(plan, "automation", {})) do
    local where = "automation[" .. (i - 1) .. "]"
    if type(lane) ~= "table" or type(lane.parameter) ~= "string" or type(lane.points) ~= "table" then
      return nil, where .. " needs a parameter and points"
    end
    for j, pt in ipairs(lane.points) do
      if type(pt) ~= "table" or not finite(pt[1]) or not finite(pt[2]) then
        return nil, where .. ".points[" .. (j - 1) .. "] is not [time_s, value]"
      end
    end
    if lane.parameter == "volume_db" and not out.volume then out.volume = lane.points end
  end
  return out
end

-- Parse and check a result text. Returns result, checked plan; or nil and a message for the user.
function M.check_result(text, id)
  local r, err = M.json_decode(text)
  if r == nil then return nil, "the result file is damaged or incomplete (" .. err .. ")" end
  if type(r) ~= "table" or r.schema ~= M.RESULT_SCHEMA then return nil, "the result file is not an editorbot result" end
  if r.id ~= id then return nil, "the result belongs to another request" end
  if r.status == "error" then return nil, "the server could not edit this: " .. tostring(opt(r, "message", "no reason given")) end
  if r.status == "cancelled" then return nil, "the job was cancelled" end
  if r.status ~= "done" then return nil, "the result has an unknown status '" .. tostring(r.status) .. "'" end
  local plan, perr = M.check_plan(r.plan)
  if not plan then return nil, "the result's plan is malformed: " .. perr end
  if r.n_segments ~= nil and r.n_segments ~= #plan.segments then
    return nil, string.format("the result's plan is incomplete (%d of %d segments)", #plan.segments, r.n_segments)
  end
  if r.n_markers ~= nil and r.n_markers ~= #plan.markers then
    return nil, string.format("the result's plan is incomplete (%d of %d markers)", #plan.markers, r.n_markers)
  end
  local offset = opt(r, "source_offset_s", 0)
  if not finite(offset) or offset < 0 then return nil, "the result's source_offset_s is not a number >= 0" end
  plan.source_offset_s = offset
  return r, plan
end

---------------------------------------------------------------------------
-- TSV (engine/exporters/tsv.py): header names the columns
---------------------------------------------------------------------------

local function split_tabs(line)
  local out, start = {}, 1
  while true do
    local i = line:find("\t", start, true)
    if not i then out[#out + 1] = line:sub(start) return out end
    out[#out + 1] = line:sub(start, i - 1)
    start = i + 1
  end
end

-- Parse a plan TSV into {segments=..., markers=..., automation=...} in plan JSON shape, or nil and why.
function M.parse_tsv(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line:gsub("\r$", "") end
  if #lines == 0 then return nil, "empty file" end
  local cols = split_tabs(lines[1])
  local index = {}
  for i, c in ipairs(cols) do index[c] = i end
  for _, need in ipairs({ "kind", "dst_start_s", "length_s", "name" }) do
    if not index[need] then return nil, "not an editorbot plan TSV (no '" .. need .. "' column)" end
  end
  local plan = { segments = {}, markers = {}, automation = {} }
  local lanes = {}
  for n = 2, #lines do
    local line = lines[n]
    if line ~= "" then
      local f = split_tabs(line)
      if #f ~= #cols then return nil, string.format("line %d: %d fields, expected %d", n, #f, #cols) end
      local function get(c) return f[index[c]] end
      local function num(c)
        local v = tonumber(get(c))
        if v == nil then error(string.format("line %d: %s is not a number", n, c), 0) end
        return v
      end
      local ok, err = pcall(function()
        local kind = get("kind")
        if kind == "segment" then
          plan.segments[#plan.segments + 1] = {
            src_start_s = num("src_start_s"), src_end_s = num("src_end_s"), dst_start_s = num("dst_start_s"),
            rate = num("rate"), pitch_semitones = num("pitch"), gain_db = num("gain_db"),
            fade_in_s = num("fade_in_s"), fade_out_s = num("fade_out_s"),
            reverse = get("reverse") == "1", mute = get("mute") == "1", action = get("action"), beat = num("beat"),
          }
          local fx_text = index.effects and get("effects") or ""
          if fx_text ~= "" then
            local effects, err = M.json_decode(fx_text)
            if effects == nil then error(string.format("line %d: effects: %s", n, err), 0) end
            plan.segments[#plan.segments].effects = effects
          end
        elseif kind == "marker" then
          plan.markers[#plan.markers + 1] = { time_s = num("dst_start_s"), name = get("name") }
        elseif kind == "region" then
          local t = num("dst_start_s")
          plan.markers[#plan.markers + 1] = { time_s = t, name = get("name"), end_s = t + num("length_s") }
        elseif kind == "automation" then
          local p = get("parameter")
          if not lanes[p] then
            lanes[p] = { parameter = p, points = {} }
            plan.automation[#plan.automation + 1] = lanes[p]
          end
          lanes[p].points[#lanes[p].points + 1] = { num("dst_start_s"), num("value") }
        else
          error(string.format("line %d: unknown kind '%s'", n, kind), 0)
        end
      end)
      if not ok then return nil, tostring(err) end
    end
  end
  return plan
end

---------------------------------------------------------------------------
-- Applying a plan
---------------------------------------------------------------------------

-- Item colours per action type (RGB).
M.COLORS = {
  KEEP = { 110, 130, 150 }, CUT = { 200, 60, 60 }, LOOP = { 60, 160, 90 }, REVERSE = { 150, 90, 200 },
  STUTTER = { 230, 150, 40 }, SILENCE = { 80, 80, 80 }, FADE_IN = { 70, 150, 210 }, FADE_OUT = { 40, 110, 180 },
  GAIN = { 210, 190, 60 }, PITCH = { 220, 90, 160 }, SPEED = { 240, 110, 60 }, LOWPASS = { 60, 180, 180 },
  HIGHPASS = { 90, 200, 160 }, BASS = { 120, 90, 60 }, TREBLE = { 200, 210, 120 }, REVERB = { 130, 150, 230 },
  DELAY = { 100, 120, 210 }, DISTORTION = { 190, 40, 100 }, COMPRESS = { 150, 150, 110 }, WIDTH = { 110, 200, 230 },
}

function M.color_for(action)
  local c = M.COLORS[action] or M.COLORS.KEEP
  return reaper.ColorToNative(c[1], c[2], c[3]) | 0x1000000
end

local function db_to_amp(db) return 10 ^ (db / 20) end

-- Markers whose action the policy chose with less than this probability are coloured
-- M.UNSURE_COLOR (engine.plan.LOW_CONFIDENCE; docs/daws.md).
M.LOW_CONFIDENCE = 0.5
M.UNSURE_COLOR = { 235, 40, 40 }

-- The policy's confidence (0-1) a marker's name shows as its trailing "(N%)", or nil.
function M.marker_confidence(name)
  local pct = name:match("%((%d+)%%%)$")
  return pct and tonumber(pct) / 100 or nil
end

-- Add markers and regions at base_s + their plan times; returns the count. Regions take their
-- action's colour, points the default; either is red where the policy was unsure.
function M.add_markers(markers, base_s)
  local n = 0
  local unsure = M.UNSURE_COLOR
  for _, m in ipairs(markers) do
    local conf = M.marker_confidence(m.name)
    local low = conf ~= nil and conf < M.LOW_CONFIDENCE
    local region = m.end_s ~= nil and m.end_s > m.time_s
    local color = 0
    if low then
      color = reaper.ColorToNative(unsure[1], unsure[2], unsure[3]) | 0x1000000
    elseif region then
      color = M.color_for(m.name:match("^(%u[%u_]*)") or "KEEP")
    end
    reaper.AddProjectMarker2(0, region, base_s + m.time_s, region and base_s + m.end_s or 0, m.name, -1, color)
    n = n + 1
  end
  return n
end

local function volume_envelope(track)
  local env = reaper.GetTrackEnvelopeByName(track, "Volume")
  if env then return env, false end
  local selected = {}
  for i = 0, reaper.CountTracks(0) - 1 do
    local tr = reaper.GetTrack(0, i)
    if reaper.IsTrackSelected(tr) then selected[#selected + 1] = tr end
  end
  reaper.SetOnlyTrackSelected(track)
  reaper.Main_OnCommand(40406, 0) -- Track: Toggle track volume envelope visible
  reaper.SetTrackSelected(track, false)
  for _, tr in ipairs(selected) do reaper.SetTrackSelected(tr, true) end
  return reaper.GetTrackEnvelopeByName(track, "Volume"), true
end

-- Write the plan's volume lane (dB) as points of a new track volume envelope,
-- left inactive: it restates the items' gain and fades (as the .rpp export).
local function write_volume(track, points, base_s)
  local env, created = volume_envelope(track)
  if not env then return 0, "no volume envelope could be made" end
  if not created then return 0, "the track already has a volume envelope; the plan's volume lane was not written" end
  local mode = reaper.GetEnvelopeScalingMode(env)
  for _, pt in ipairs(points) do
    reaper.InsertEnvelopePoint(env, base_s + pt[1], reaper.ScaleToEnvelopeMode(mode, db_to_amp(pt[2])), 0, 0, false, true)
  end
  reaper.Envelope_SortPoints(env)
  local ok, chunk = reaper.GetEnvelopeStateChunk(env, "", false)
  if ok then
    local new = chunk:gsub("\nACT 1", "\nACT 0", 1)
    reaper.SetEnvelopeStateChunk(env, new, false)
  end
  return #points
end

-- Describe the edit target: the selected item, cut to the time selection if there is one.
-- Returns target or nil and a message.
function M.find_target()
  local n = reaper.CountSelectedMediaItems(0)
  if n == 0 then return nil, "Select the audio item to edit (and optionally a time selection inside it)." end
  if n > 1 then return nil, "Select one item only (" .. n .. " are selected)." end
  local item = reaper.GetSelectedMediaItem(0, 0)
  local take = reaper.GetActiveTake(item)
  if not take or reaper.TakeIsMIDI(take) then return nil, "The selected item has no audio take." end
  local src = reaper.GetMediaItemTake_Source(take)
  local file = reaper.GetMediaSourceFileName(src)
  if not file or file == "" then return nil, "The selected item's take has no source file (glue or render it first)." end
  if not M.exists(file) then return nil, "The selected item's file " .. file .. " is missing." end
  local rate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
  if math.abs(rate - 1) > 1e-9 then return nil, "The selected item plays at rate " .. rate .. "; set it to 1.0 first." end
  local pos = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  local len = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  local offs = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")
  local t0, t1 = pos, pos + len
  local ts0, ts1 = reaper.GetSet_LoopTimeRange2(0, false, false, 0, 0, false)
  if ts1 > ts0 then
    if ts1 <= pos or ts0 >= pos + len then return nil, "The time selection does not overlap the selected item." end
    t0, t1 = math.max(pos, ts0), math.min(pos + len, ts1)
  end
  return {
    item = item, take = take, track = reaper.GetMediaItem_Track(item), file = file,
    item_pos = pos, item_len = len, start_offs = offs, t0 = t0, t1 = t1,
    src_start_s = offs + (t0 - pos), src_end_s = offs + (t1 - pos),
  }
end

-- Is the target as it was when the request was made?
function M.target_unchanged(target)
  if not reaper.ValidatePtr2(0, target.item, "MediaItem*") then return false end
  return math.abs(reaper.GetMediaItemInfo_Value(target.item, "D_POSITION") - target.item_pos) < 1e-9
    and math.abs(reaper.GetMediaItemInfo_Value(target.item, "D_LENGTH") - target.item_len) < 1e-9
end

local function set_item(item, key, v)
  if not reaper.SetMediaItemInfo_Value(item, key, v) then error("cannot set " .. key, 0) end
end

local function set_take(take, key, v)
  if not reaper.SetMediaItemTakeInfo_Value(take, key, v) then error("cannot set " .. key, 0) end
end

---------------------------------------------------------------------------
-- Effects as take FX (docs/reaper.md, "Effects")
---------------------------------------------------------------------------

-- Shelf corners of editorbot's BASS and TREBLE (engine/render.py BASS_SHELF_HZ, TREBLE_SHELF_HZ).
M.BASS_SHELF_HZ = 200.0
M.TREBLE_SHELF_HZ = 4000.0
-- ReaEQ band types, written with TakeFX_SetNamedConfigParm(take, fx, "BANDTYPE<band>", type).
M.REAEQ_TYPE = { low_shelf = 0, high_shelf = 1, low_pass = 3, high_pass = 4 }
-- The two JS effects shipped with the scripts, by their path below <resource path>/Effects:
-- where ReaPack installs them (Effects/<repository>/<category>/), then where docs/reaper.md
-- tells a by-hand install to copy them.
local function js_names(file)
  return { "JS: editorbot/editorbot/" .. file, "JS: editorbot/" .. file }
end
M.JS_DISTORTION = js_names("editorbot_distortion.jsfx")
M.JS_WIDTH = js_names("editorbot_width.jsfx")

local function amp_db(a) if a <= 0 then return -math.huge end return 20 * math.log(a, 10) end

-- The number a plug-in shows for a parameter ("1.20k" -> 1200, "-inf" -> -inf, "4.0:1" -> 4).
function M.display_number(text)
  if type(text) ~= "string" then return nil end
  local t = text:lower()
  if t:find("^%s*%-inf") then return -math.huge end
  if t:find("^%s*%+?inf") then return math.huge end
  local num, suffix = t:match("^%s*([-+]?%d*%.?%d+)%s*(k?)")
  local v = tonumber(num)
  if v and suffix == "k" then v = v * 1000 end
  return v
end

-- Index of the n-th parameter of take FX fx whose name passes match(name), found through
-- TakeFX_GetParamName (indices move with a plug-in's band count and version, names do not).
local function param_index(take, fx, match, n)
  n = n or 1
  for p = 0, reaper.TakeFX_GetNumParams(take, fx) - 1 do
    local ok, name = reaper.TakeFX_GetParamName(take, fx, p)
    if ok and match(name) then
      n = n - 1
      if n == 0 then return p end
    end
  end
  return nil
end

local function named(words)
  return function(name)
    local l = name:lower()
    for _, w in ipairs(words) do if not l:find(w, 1, true) then return false end end
    return true
  end
end

local function starts(prefix)
  return function(name) return name:lower():sub(1, #prefix) == prefix end
end

local function shown(take, fx, p, x)
  local _, text = reaper.TakeFX_FormatParamValueNormalized(take, fx, p, x, "")
  return M.display_number(text)
end

-- Set parameter p to the normalized value whose displayed number is target: the plug-in's own
-- formatter (TakeFX_FormatParamValueNormalized) is bisected, so no undocumented curve is assumed.
-- Targets outside the parameter's range take the nearest end. Returns the number shown.
local function set_shown(take, fx, p, target)
  local lo_v, hi_v = shown(take, fx, p, 0), shown(take, fx, p, 1)
  if lo_v == nil or hi_v == nil then error("parameter " .. p .. " shows no number", 0) end
  local rising = hi_v >= lo_v
  local lo, hi = 0.0, 1.0
  if (rising and target <= lo_v) or (not rising and target >= lo_v) then
    hi = 0.0
  elseif (rising and target >= hi_v) or (not rising and target <= hi_v) then
    lo = 1.0
  else
    for _ = 1, 48 do
      local mid = 0.5 * (lo + hi)
      local v = shown(take, fx, p, mid)
      if v == nil then error("parameter " .. p .. " shows no number at " .. mid, 0) end
      if v == target then lo, hi = mid, mid break end
      if (v < target) == rising then lo = mid else hi = mid end
    end
  end
  -- the display is rounded: of the two ends, keep the one showing the nearer number
  local x = lo
  if math.abs(shown(take, fx, p, hi) - target) < math.abs(shown(take, fx, p, lo) - target) then x = hi end
  reaper.TakeFX_SetParamNormalized(take, fx, p, x)
  return shown(take, fx, p, x)
end

-- Add a new instance of a plug-in (a name, or a list of names tried in order) to take.
local function add_fx(take, names)
  if type(names) == "string" then names = { names } end
  for _, name in ipairs(names) do
    local fx = reaper.TakeFX_AddByName(take, name, -1) -- negative: always a new instance
    if fx >= 0 then return fx end
  end
  error("Reaper has no plug-in '" .. table.concat(names, "' or '") .. "'", 0)
end

-- Add one of the shipped JS effects and set its slider ``word`` to value, in the slider's
-- own units (TakeFX_SetParam); error(message) when the slider is missing or refused.
local function js_fx(take, name, word, value, message)
  local fx = add_fx(take, name)
  local i = param_index(take, fx, named({ word }))
  if not i or not reaper.TakeFX_SetParam(take, fx, i, value) then error(message, 0) end
  return fx
end

local function set_named(take, fx, match, target, what, n)
  local p = param_index(take, fx, match, n)
  if not p then error(what .. ": no such parameter", 0) end
  return set_shown(take, fx, p, target)
end

-- ReaEQ with band 0 of the given type and the other bands off.
local function reaeq_band(take, band_type, freq_hz, gain_db)
  local fx = add_fx(take, "ReaEQ")
  for b = 0, 15 do
    if not reaper.TakeFX_SetNamedConfigParm(take, fx, "BANDENABLED" .. b, b == 0 and "1" or "0") then break end
  end
  if not reaper.TakeFX_SetNamedConfigParm(take, fx, "BANDTYPE0", tostring(band_type)) then
    error("ReaEQ: cannot set the band type", 0)
  end
  set_named(take, fx, starts("freq"), freq_hz, "ReaEQ frequency")
  if gain_db ~= nil then set_named(take, fx, starts("gain"), gain_db, "ReaEQ gain") end
  return fx
end

-- How each plan effect becomes a take FX. Values are the plan's (engine/actions.py EFFECT_RANGES).
M.FX = {
  lowpass = function(take, p) return reaeq_band(take, M.REAEQ_TYPE.low_pass, p.cutoff_hz) end,
  highpass = function(take, p) return reaeq_band(take, M.REAEQ_TYPE.high_pass, p.cutoff_hz) end,
  bass = function(take, p) return reaeq_band(take, M.REAEQ_TYPE.low_shelf, M.BASS_SHELF_HZ, p.gain_db) end,
  treble = function(take, p) return reaeq_band(take, M.REAEQ_TYPE.high_shelf, M.TREBLE_SHELF_HZ, p.gain_db) end,
  reverb = function(take, p)
    -- pedalboard.Reverb(room_size, wet_level = wet, dry_level = 1 - wet)
    local fx = add_fx(take, "ReaVerbate")
    set_named(take, fx, named({ "wet" }), amp_db(p.wet), "ReaVerbate Wet")
    set_named(take, fx, named({ "dry" }), amp_db(1 - p.wet), "ReaVerbate Dry")
    local room = param_index(take, fx, named({ "room" }))
    if not room then error("ReaVerbate room size: no such parameter", 0) end
    reaper.TakeFX_SetParamNormalized(take, fx, room, p.room_size) -- both run 0..1 over the full range
    return fx
  end,
  delay = function(take, p)
    -- pedalboard.Delay(delay_seconds, feedback, mix): dry 1 - mix, wet mix, one feedback tap
    local fx = add_fx(take, "ReaDelay")
    set_named(take, fx, function(n) return n:lower() == "wet" end, amp_db(p.mix), "ReaDelay Wet")
    set_named(take, fx, function(n) return n:lower() == "dry" end, amp_db(1 - p.mix), "ReaDelay Dry")
    set_named(take, fx, named({ "length", "time" }), p.delay_s * 1000, "ReaDelay length (ms)")
    set_named(take, fx, named({ "length", "musical" }), 0, "ReaDelay length (musical)")
    set_named(take, fx, named({ "feedback" }), amp_db(p.feedback), "ReaDelay feedback")
    return fx
  end,
  compress = function(take, p)
    -- pedalboard.Compressor(threshold_db, ratio) with its attack 1 ms and release 100 ms
    local fx = add_fx(take, "ReaComp")
    set_named(take, fx, named({ "thresh" }), p.threshold_db, "ReaComp threshold")
    set_named(take, fx, named({ "ratio" }), p.ratio, "ReaComp ratio")
    set_named(take, fx, named({ "attack" }), 1, "ReaComp attack")
    set_named(take, fx, named({ "release" }), 100, "ReaComp release")
    return fx
  end,
  -- The JS effects take slider values as they are (TakeFX_SetParam in the slider's own units).
  distortion = function(take, p) return js_fx(take, M.JS_DISTORTION, "drive", p.drive_db, "editorbot distortion: cannot set Drive") end,
  width = function(take, p) return js_fx(take, M.JS_WIDTH, "width", p.width, "editorbot width: cannot set Width") end,
}

-- Add a segment's effects, in plan order, as take FX of take.
local function add_effects(take, effects, where)
  for i, e in ipairs(effects) do
    local build = M.FX[e.name]
    if not build then error(string.format("%s.effects[%d]: unknown effect '%s'", where, i - 1, tostring(e.name)), 0) end
    local ok, err = pcall(build, take, e.params)
    if not ok then error(string.format("%s.effects[%d] %s: %s", where, i - 1, e.name, tostring(err)), 0) end
  end
end

local function apply_in_block(target, plan)
  local t0, t1, track = target.t0, target.t1, target.track
  -- split off the part to edit
  local mid = target.item
  if t0 > target.item_pos + 1e-9 then
    mid = reaper.SplitMediaItem(mid, t0)
    if not mid then error("could not split the item at " .. t0, 0) end
  end
  local right = nil
  if t1 < target.item_pos + target.item_len - 1e-9 then
    right = reaper.SplitMediaItem(mid, t1)
    if not right then error("could not split the item at " .. t1, 0) end
  end
  local base_vol = reaper.GetMediaItemInfo_Value(mid, "D_VOL")
  -- one new item per segment, all reading the same file
  local made, reversed = {}, {}
  for _, seg in ipairs(plan.segments) do
    local item = reaper.AddMediaItemToTrack(track)
    local take = reaper.AddTakeToMediaItem(item)
    if not reaper.SetMediaItemTake_Source(take, reaper.PCM_Source_CreateFromFile(target.file)) then
      error("cannot read " .. target.file, 0)
    end
    set_item(item, "D_POSITION", t0 + seg.dst_start_s)
    set_item(item, "D_LENGTH", seg.length_s)
    -- plan source times count from source_offset_s in the file
    set_take(take, "D_STARTOFFS", plan.source_offset_s + seg.src_start_s)
    set_take(take, "D_PLAYRATE", seg.rate)
    set_take(take, "B_PPITCH", 1)
    set_take(take, "D_PITCH", seg.pitch)
    set_item(item, "D_FADEINLEN", seg.fade_in_s)
    set_item(item, "D_FADEOUTLEN", seg.fade_out_s)
    set_item(item, "D_VOL", base_vol * db_to_amp(seg.gain_db))
    set_item(item, "B_MUTE", seg.mute and 1 or 0)
    set_item(item, "I_CUSTOMCOLOR", M.color_for(seg.action))
    reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", seg.action .. " b" .. math.floor(seg.beat), true)
    add_effects(take, seg.effects, "segments[" .. (#made) .. "]")
    made[#made + 1] = item
    if seg.reverse then reversed[#reversed + 1] = item end
  end
  if not reaper.DeleteTrackMediaItem(track, mid) then error("could not remove the original part", 0) end
  if right then set_item(right, "D_POSITION", t0 + plan.duration_s) end
  reaper.SelectAllMediaItems(0, false)
  if #reversed > 0 then
    for _, it in ipairs(reversed) do reaper.SetMediaItemSelected(it, true) end
    reaper.Main_OnCommand(41051, 0) -- Item properties: Toggle take reverse
    reaper.SelectAllMediaItems(0, false)
  end
  for _, it in ipairs(made) do reaper.SetMediaItemSelected(it, true) end
  local n_markers = M.add_markers(plan.markers, t0)
  local note = nil
  if plan.volume then
    local _, why = write_volume(track, plan.volume, t0)
    note = why
  end
  return { items = #made, markers = n_markers, note = note }
end

-- Apply a checked plan to the target in one undo block. A failure part-way
-- ends the block and undoes it, so the project is as before.
-- Returns a summary table, or nil and a message.
function M.apply_plan(target, plan)
  reaper.Undo_BeginBlock2(0)
  reaper.PreventUIRefresh(1)
  local ok, res = pcall(apply_in_block, target, plan)
  reaper.PreventUIRefresh(-1)
  reaper.Undo_EndBlock2(0, "editorbot: auto-edit", -1)
  if not ok then
    reaper.Undo_DoUndo2(0)
    reaper.UpdateArrange()
    return nil, "applying the plan failed and was undone: " .. tostring(res)
  end
  reaper.UpdateArrange()
  return res
end

return M
