ardour {
	["type"] = "EditorAction",
	name = "editorbot: auto-edit the selected region",
	author = "editorbot",
	description = [[Sends the selected audio region to the editorbot server (editorbot serve --spool DIR)
and applies the returned edit plan to this session in one undoable step: the region is replaced by one
region per plan segment (trimmed, moved, faded, with the segment's gain), the plan's markers are added,
and segments with reverse, speed, pitch or effects come back as audio editorbot rendered.]]
}

-- Ardour runs an editor action through its factory, so every function lives inside it.
-- factory({library = true}) returns the functions instead of the action (tests/bridge/test_ardour_lua.py
-- drives them headless in ardour7-lua); the action itself is editorbot.run().

function action_params ()
	return {
		["spool"] = { title = "Spool folder (the --spool of editorbot serve; empty: ~/.editorbot/spool)", default = "" },
		["target_duration_s"] = { title = "Length of the edit in seconds (empty: the model's own)", default = "" },
		["model"] = { title = "Model (.onnx path, or empty for the bundled one)", default = "" },
	}
end

function factory (params)
	local M = {}
	M.TITLE = "editorbot"
	M.REQUEST_SCHEMA = "editorbot.spool.request/1"
	M.RESULT_SCHEMA = "editorbot.spool.result/1"
	M.HEARTBEAT_STALE_S = 5 -- a heartbeat older than this: no server
	M.TIMEOUT_S = 600 -- give up on a job after this long
	M.UNCHANGED = "\n\nThe session was not changed."

	------------------------------------------------------------------------
	-- JSON (Ardour loads one file per action: the decoder lives here too)
	------------------------------------------------------------------------

	M.null = setmetatable({}, { __tostring = function () return "null" end })

	local function json_error (text, pos, what)
		error({ json = true, message = string.format("%s at character %d", what, pos) }, 0)
	end

	local function skip_ws (text, pos)
		return text:find("[^ \t\r\n]", pos) or (#text + 1)
	end

	local decode_value
	local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

	local function decode_string (text, pos)
		local out, i = {}, pos + 1
		while true do
			local j = text:find('["\\%c]', i)
			if not j then json_error(text, pos, "unterminated string") end
			out[#out + 1] = text:sub(i, j - 1)
			local c = text:sub(j, j)
			if c == '"' then return table.concat(out), j + 1 end
			if c ~= "\\" then json_error(text, j, "control character in string") end
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
				out[#out + 1] = utf8.char(cp)
			else
				json_error(text, j, "bad escape")
			end
		end
	end

	local function decode_container (text, pos, close)
		local out, n = {}, 0
		pos = skip_ws(text, pos + 1)
		if text:sub(pos, pos) == close then return out, pos + 1 end
		while true do
			if close == "}" then
				if text:sub(pos, pos) ~= '"' then json_error(text, pos, "expected a string key") end
				local key
				key, pos = decode_string(text, pos)
				pos = skip_ws(text, pos)
				if text:sub(pos, pos) ~= ":" then json_error(text, pos, "expected ':'") end
				out[key], pos = decode_value(text, skip_ws(text, pos + 1))
			else
				n = n + 1
				out[n], pos = decode_value(text, pos)
			end
			pos = skip_ws(text, pos)
			local c = text:sub(pos, pos)
			if c == close then return out, pos + 1 end
			if c ~= "," then json_error(text, pos, "expected ',' or '" .. close .. "'") end
			pos = skip_ws(text, pos + 1)
		end
	end

	decode_value = function (text, pos)
		local c = text:sub(pos, pos)
		if c == "{" then return decode_container(text, pos, "}")
		elseif c == "[" then return decode_container(text, pos, "]")
		elseif c == '"' then return decode_string(text, pos)
		elseif c == "-" or c:match("%d") then
			local s = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
			local v = s and tonumber(s)
			if v == nil then json_error(text, pos, "bad number") end
			return v, pos + #s
		elseif text:sub(pos, pos + 3) == "true" then return true, pos + 4
		elseif text:sub(pos, pos + 4) == "false" then return false, pos + 5
		elseif text:sub(pos, pos + 3) == "null" then return M.null, pos + 4
		end
		json_error(text, pos, c == "" and "unexpected end of text" or "unexpected character '" .. c .. "'")
	end

	-- Decode a JSON text: the value, or nil and a one-line message.
	function M.json_decode (text)
		if type(text) ~= "string" then return nil, "not text" end
		local ok, value, pos = pcall(function ()
			local v, p = decode_value(text, skip_ws(text, 1))
			return v, skip_ws(text, p)
		end)
		if not ok then return nil, type(value) == "table" and value.message or tostring(value) end
		if pos <= #text then return nil, "trailing characters at character " .. pos end
		return value
	end

	local function encode_string (s)
		return '"' .. s:gsub('[%c"\\]', function (c)
			local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
			return map[c] or string.format("\\u%04x", c:byte())
		end) .. '"'
	end

	-- Encode a request: strings, finite numbers, booleans, arrays (tables with [1]) and objects.
	function M.json_encode (v)
		local t = type(v)
		if t == "string" then return encode_string(v) end
		if t == "boolean" then return tostring(v) end
		if t == "number" then
			assert(v == v and v ~= math.huge and v ~= -math.huge, "cannot encode a non-finite number")
			return math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
		end
		assert(t == "table", "cannot encode a " .. t)
		local parts = {}
		if v[1] ~= nil then
			for i = 1, #v do parts[i] = M.json_encode(v[i]) end
			return "[" .. table.concat(parts, ",") .. "]"
		end
		local keys = {}
		for k in pairs(v) do keys[#keys + 1] = k end
		table.sort(keys)
		for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ":" .. M.json_encode(v[k]) end
		return "{" .. table.concat(parts, ",") .. "}"
	end

	------------------------------------------------------------------------
	-- Files and the spool folder (bridge/spool.py describes the exchange)
	------------------------------------------------------------------------

	function M.read_file (path)
		local f = io.open(path, "rb")
		if not f then return nil end
		local text = f:read("a")
		f:close()
		return text
	end

	function M.exists (path)
		local f = io.open(path, "rb")
		if f then f:close() return true end
		return false
	end

	-- Write text to path atomically: a dot-named temp file in the same folder, then rename.
	function M.write_atomic (path, text)
		local dir, name = path:match("^(.*/)([^/]+)$")
		local tmp = dir .. "." .. name .. "." .. tostring(math.random(100000, 999999)) .. ".tmp"
		local f, err = io.open(tmp, "wb")
		if not f then return nil, err end
		local ok, werr = f:write(text)
		f:close()
		if not ok then os.remove(tmp) return nil, werr end
		local renamed, rerr = os.rename(tmp, path)
		if not renamed then os.remove(tmp) return nil, rerr end
		return true
	end

	function M.spool_paths (dir)
		return {
			root = dir, heartbeat = dir .. "/heartbeat", inbox = dir .. "/inbox", outbox = dir .. "/outbox",
			cancel = dir .. "/cancel", alive = dir .. "/alive",
		}
	end

	function M.settings (p)
		p = p or {}
		local spool = p["spool"] or ""
		if spool == "" then spool = (os.getenv("EDITORBOT_SPOOL") or ((os.getenv("HOME") or "") .. "/.editorbot/spool")) end
		return { spool = spool, target_duration_s = p["target_duration_s"] or "", model = p["model"] or "" }
	end

	-- Seconds since the server's last heartbeat (math.huge when there is none).
	function M.heartbeat_age (sp)
		local hb = M.json_decode(M.read_file(sp.heartbeat) or "")
		if type(hb) ~= "table" or type(hb.time) ~= "number" then return math.huge end
		return os.time() - hb.time
	end

	------------------------------------------------------------------------
	-- The region to edit
	------------------------------------------------------------------------

	-- The one selected region in the editor, or nil and why.
	function M.selected_region ()
		local regions = Editor:get_selection().regions:regionlist()
		if regions:size() ~= 1 then
			return nil, string.format("Select one audio region (%d selected).", regions:size())
		end
		for r in regions:iter() do return r end
	end

	-- What the request needs of a region: its files and source span; or nil and a message.
	function M.check_region (region, sample_rate)
		if region == nil or region:isnil() then return nil, "Select one audio region first." end
		local ar = region:to_audioregion()
		if ar:isnil() then
			return nil, "'" .. region:name() .. "' is a MIDI region: editorbot edits audio regions."
		end
		local playlist = region:playlist()
		if playlist:isnil() then return nil, "'" .. region:name() .. "' is not on a track." end
		local files = {}
		for c = 0, ar:n_channels() - 1 do
			local fs = region:source(c):to_filesource()
			if fs:isnil() then return nil, "'" .. region:name() .. "' has no audio file behind it." end
			local path = fs:path()
			if not M.exists(path) then
				return nil, "'" .. region:name() .. "': its audio file " .. path .. " is missing."
			end
			files[#files + 1] = path
		end
		local start, length = region:start():samples(), region:length():samples()
		if length < sample_rate then
			return nil, "'" .. region:name() .. "' is shorter than a second."
		end
		return {
			region = region, playlist = playlist, files = files, sample_rate = sample_rate, position = region:position():samples(),
			start = start, length = length, scale = ar:scale_amplitude(),
		}
	end

	-- Unique per run: each run gets a fresh Lua state (the same math.random sequence), so the
	-- microsecond clock tells two requests of one second apart.
	function M.new_request_id ()
		return string.format("ardour-%d-%06d", os.time(), ARDOUR.LuaAPI.monotonic_time() % 1000000)
	end

	function M.make_request (target, id, settings)
		local sr = target.sample_rate
		local request = {
			schema = M.REQUEST_SCHEMA, id = id, kind = "edit", audio = target.files[1],
			start_s = target.start / sr, end_s = (target.start + target.length) / sr,
			model = settings.model, created = os.time(),
		}
		if #target.files > 1 then
			request.channel_files = { table.unpack(target.files, 2) }
		end
		local t = tonumber(settings.target_duration_s)
		if t then request.target_duration_s = t end
		return request
	end

	------------------------------------------------------------------------
	-- The result and its plan (checked before anything in the session changes)
	------------------------------------------------------------------------

	local function finite (x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

	local function field (t, key, default)
		local v = t[key]
		if v == nil or v == M.null then return default end
		return v
	end

	-- A segment needs editorbot's rendered audio when Ardour has nothing that does what it does.
	local function processed (seg)
		return seg.reverse or seg.rate ~= 1 or seg.pitch_semitones ~= 0 or #seg.effects > 0
	end

	-- The result file's text -> result, plan; or nil and a message.
	function M.check_result (text, id)
		local r, err = M.json_decode(text)
		if r == nil then return nil, "the result file is damaged or incomplete (" .. err .. ")" end
		if type(r) ~= "table" or r.schema ~= M.RESULT_SCHEMA then return nil, "the result file is not an editorbot result" end
		if r.id ~= id then return nil, "the result belongs to another request" end
		if r.status == "error" then return nil, "the server could not edit this: " .. tostring(field(r, "message", "no reason given")) end
		if r.status == "cancelled" then return nil, "the job was cancelled" end
		if r.status ~= "done" then return nil, "the result has an unknown status '" .. tostring(r.status) .. "'" end
		local plan = r.plan
		if type(plan) ~= "table" or type(plan.segments) ~= "table" then return nil, "the result has no plan" end
		local offset = field(r, "source_offset_s", 0)
		if not finite(offset) or offset < 0 then return nil, "the result's source_offset_s is not a number >= 0" end
		for i, s in ipairs(plan.segments) do
			for _, k in ipairs({ "src_start_s", "src_end_s", "dst_start_s", "gain_db", "fade_in_s", "fade_out_s", "rate", "pitch_semitones" }) do
				if not finite(s[k]) then return nil, string.format("segment %d: %s is not a number", i, k) end
			end
			if s.src_end_s <= s.src_start_s or s.rate <= 0 then return nil, string.format("segment %d is empty", i) end
			if type(s.effects) ~= "table" then s.effects = {} end
			s.reverse, s.mute = s.reverse == true, s.mute == true
		end
		plan.markers = type(plan.markers) == "table" and plan.markers or {}
		for i, m in ipairs(plan.markers) do
			if not finite(m.time_s) or type(m.name) ~= "string" then return nil, string.format("marker %d is malformed", i) end
		end
		return { audio_path = field(r, "audio_path", nil), source_offset_s = offset, message = field(r, "message", "") }, plan
	end

	-- The regions an applied plan consists of, in samples, or nil and a message.
	-- Each: {from = "source" | "rendered", start, length, position, fade_in, fade_out, gain, segment}.
	-- Source regions are trimmed from the selected region's files; rendered ones are the segment's output
	-- span of editorbot's render of the edit (fades and gain already in it).
	function M.placements (plan, target, offset_s)
		local sr = target.sample_rate
		local out = {}
		local src_len = target.start + target.length
		for i, s in ipairs(plan.segments) do
			local out_len = math.floor((s.src_end_s - s.src_start_s) / s.rate * sr + 0.5)
			local dst = math.floor(s.dst_start_s * sr + 0.5)
			if s.mute or out_len <= 0 then goto next end
			if processed(s) then
				out[#out + 1] = {
					from = "rendered", start = dst, length = out_len, position = target.position + dst,
					fade_in = 0, fade_out = 0, gain = target.scale, segment = i,
				}
			else
				local a = math.floor((s.src_start_s + offset_s) * sr + 0.5)
				local b = math.min(src_len, math.floor((s.src_end_s + offset_s) * sr + 0.5))
				if b <= a then return nil, string.format("segment %d lies outside the region", i) end
				out[#out + 1] = {
					from = "source", start = a, length = b - a, position = target.position + dst,
					fade_in = math.min(b - a, math.floor(s.fade_in_s * sr + 0.5)),
					fade_out = math.min(b - a, math.floor(s.fade_out_s * sr + 0.5)),
					gain = target.scale * 10 ^ (s.gain_db / 20), segment = i,
				}
			end
			::next::
		end
		return out
	end

	function M.needs_render (placements)
		for _, p in ipairs(placements) do if p.from == "rendered" then return true end end
		return false
	end

	-- The whole-file region Ardour made when it imported `path` (its source is named after the file).
	function M.imported_region (path)
		local stem = path:match("([^/]+)%.[^./]*$") or path:match("([^/]+)$")
		for _, r in ARDOUR.RegionFactory.regions():iter() do
			if r:whole_file() and r:source(0):name():sub(1, #stem) == stem then return r end
		end
		return nil
	end

	-- Bring editorbot's rendered edit into the session (GUI: Editor:do_import as a region, not on a track).
	function M.import_rendered (path)
		local files = C.StringVector()
		files:push_back(path)
		local pos = Temporal.timepos_t(0)
		Editor:do_import(files, Editing.ImportDistinctFiles, Editing.ImportAsRegion, ARDOUR.SrcQuality.SrcBest,
			ARDOUR.MidiTrackNameSource.SMFTrackName, ARDOUR.MidiTempoMapDisposition.SMFTempoIgnore,
			pos, ARDOUR.PluginInfo(), ARDOUR.Track(), false)
		return M.imported_region(path)
	end

	-- A point marker named `name` at sample `pos`. The editor's own marker command joins the open
	-- reversible command (Ardour's Lua binds no undoable Locations:add); headless, with no editor,
	-- the only marker Lua can add is a range of zero length.
	function M.add_marker (pos, name)
		local where = Temporal.timepos_t(pos)
		local loc
		if Editor then
			Editor:mouse_add_new_marker(where, ARDOUR.LocationFlags.IsMark, 0)
			loc = Session:locations():mark_at(where, Temporal.timecnt_t(0))
		else
			loc = Session:locations():add_range(where, where)
		end
		if loc then loc:set_name(name) end
		return loc ~= nil
	end

	------------------------------------------------------------------------
	-- Applying: one reversible command
	------------------------------------------------------------------------

	local function place (base, p)
		local r = ARDOUR.RegionFactory.clone_region(base, true, false)
		r:set_length(Temporal.timecnt_t(p.length))
		r:set_start(Temporal.timepos_t(p.start))
		if r:start():samples() ~= p.start or r:length():samples() ~= p.length then
			error(string.format("segment %d: Ardour refused the trim", p.segment), 0)
		end
		local ar = r:to_audioregion()
		for _, edge in ipairs({ "in", "out" }) do
			local n = p["fade_" .. edge]
			if n > 0 then
				ar["set_fade_" .. edge .. "_shape"](ar, ARDOUR.FadeShape.FadeLinear) -- the plan's fades are linear in gain
				ar["set_fade_" .. edge .. "_length"](ar, n)
				ar["set_fade_" .. edge .. "_active"](ar, true)
			end
		end
		ar:set_scale_amplitude(p.gain)
		return r
	end

	-- Replace the target region by the plan's regions and add its markers, as one undo step.
	-- rendered: the imported whole-file region of editorbot's render (needed when placements ask for it).
	-- Returns a summary table, or nil and a message (the session unchanged).
	function M.apply (target, plan, placements, rendered)
		if M.needs_render(placements) and (rendered == nil or rendered:isnil()) then
			return nil, "the plan has reversed, re-timed, pitched or effected segments but editorbot's render of them is missing" .. M.UNCHANGED
		end
		local playlist = target.playlist
		-- every region is made and trimmed before the playlist changes: a refusal leaves it untouched
		local made = {}
		local ok, err = pcall(function ()
			for i, p in ipairs(placements) do made[i] = place(p.from == "rendered" and rendered or target.region, p) end
		end)
		if not ok then return nil, "applying the plan failed: " .. tostring(err) .. M.UNCHANGED end
		Session:begin_reversible_command("editorbot auto-edit")
		playlist:to_stateful():clear_changes()
		playlist:remove_region(target.region)
		for i, p in ipairs(placements) do playlist:add_region(made[i], Temporal.timepos_t(p.position), 1, false) end
		Session:add_stateful_diff_command(playlist:to_statefuldestructible())
		local n_markers = 0
		for _, m in ipairs(plan.markers) do
			if M.add_marker(target.position + math.floor(m.time_s * target.sample_rate + 0.5), m.name) then
				n_markers = n_markers + 1
			end
		end
		Session:commit_reversible_command(nil)
		return { regions = #placements, markers = n_markers }
	end

	------------------------------------------------------------------------
	-- The action
	------------------------------------------------------------------------

	function M.say (message)
		if LuaDialog then
			LuaDialog.Message(M.TITLE, message, LuaDialog.MessageType.Warning, LuaDialog.ButtonType.Close):run()
		else
			print("editorbot: " .. message)
		end
	end

	-- Check the region and the server and write the request: the request's id and spool paths, or nil and a message.
	function M.submit (region, settings)
		local target, why = M.check_region(region, Session:nominal_sample_rate())
		if not target then return nil, why end
		local sp = M.spool_paths(settings.spool)
		if M.heartbeat_age(sp) > M.HEARTBEAT_STALE_S then
			return nil, "The editorbot server is not running. Start it with:\n  editorbot serve --spool " .. settings.spool
		end
		local id = M.new_request_id()
		local ok, err = M.write_atomic(sp.inbox .. "/" .. id .. ".json", M.json_encode(M.make_request(target, id, settings)))
		if not ok then return nil, "cannot write the request into " .. sp.inbox .. ": " .. tostring(err) end
		return { id = id, spool = sp, target = target }
	end

	-- Wait for the result with a progress window (Cancel works); the result text, or nil and a message.
	function M.wait (job)
		local sp, id = job.spool, job.id
		local dialog = LuaDialog.ProgressWindow(M.TITLE, true)
		local started = os.time()
		local text, why
		while true do
			text = M.read_file(sp.outbox .. "/" .. id .. ".json")
			if text then break end
			local p = M.json_decode(M.read_file(sp.outbox .. "/" .. id .. ".progress.json") or "")
			local fraction = type(p) == "table" and finite(p.fraction) and p.fraction or 0
			local stage = type(p) == "table" and type(p.stage) == "string" and p.stage or "waiting for the server"
			if dialog:progress(fraction, stage) then why = "Cancelled." break end
			if M.heartbeat_age(sp) > M.HEARTBEAT_STALE_S then why = "The editorbot server stopped." break end
			if os.time() - started > M.TIMEOUT_S then why = "No answer from the editorbot server in time." break end
			M.write_atomic(sp.alive .. "/" .. id, tostring(os.time()))
			ARDOUR.LuaAPI.usleep(200000)
		end
		dialog:done()
		if not text then
			os.remove(sp.inbox .. "/" .. id .. ".json")
			M.write_atomic(sp.cancel .. "/" .. id, tostring(os.time()))
		end
		os.remove(sp.alive .. "/" .. id)
		return text, why
	end

	function M.run (p)
		local settings = M.settings(p)
		local region, why = M.selected_region()
		local job
		if region then job, why = M.submit(region, settings) end
		if not job then M.say(why .. M.UNCHANGED) return end
		local text
		text, why = M.wait(job)
		if not text then M.say(why .. M.UNCHANGED) return end
		local result, plan = M.check_result(text, job.id)
		if not result then M.say(plan .. M.UNCHANGED) return end
		local placements
		placements, why = M.placements(plan, job.target, result.source_offset_s)
		if not placements then M.say(why .. M.UNCHANGED) return end
		local rendered
		if M.needs_render(placements) then
			if type(result.audio_path) ~= "string" or not M.exists(result.audio_path) then
				M.say("the server sent no rendered audio for the processed segments (use a model, not \"dp\")" .. M.UNCHANGED)
				return
			end
			rendered = M.import_rendered(result.audio_path)
		end
		local summary
		summary, why = M.apply(job.target, plan, placements, rendered)
		if not summary then M.say(why) return end
		print(string.format("editorbot: %d regions, %d markers. %s", summary.regions, summary.markers, result.message))
	end

	if params and params.library then return M end
	return function () M.run(params) end
end
