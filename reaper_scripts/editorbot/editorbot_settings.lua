-- @description editorbot: settings (model, target duration, keep ranges, server command, spool folder)
-- @author editorbot
-- @version 0.2.0
-- @noindex
-- @about
--   Asks for the editorbot settings and keeps them with SetExtState
--   (persistent, section "editorbot"), where editorbot_auto_edit reads them:
--
--   - model: empty for the default model, a .onnx file, or "dp" for the
--     pure DP retimer (no learned model; needs a target duration)
--   - target duration in seconds (empty: the model decides the length)
--   - keep ranges, "START-END; START-END" in seconds from the start of the
--     edited part: left exactly as they are
--   - server command: the editorbot executable, e.g. /home/me/editorbot/.venv/bin/editorbot;
--     auto-edit runs "COMMAND serve --spool FOLDER" when no server is running
--   - spool folder: empty for <REAPER resource path>/editorbot/spool
--   - job timeout and server start timeout in seconds

local script_dir = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
local lib = dofile(script_dir .. "editorbot_lib.lua")

local LABELS = {
  model = "Model (empty / .onnx path / dp)",
  target_duration_s = "Target duration (s; empty = free)",
  keep = "Keep ranges (s: 3-6;10-12)",
  server_cmd = "Server command (editorbot path)",
  spool_dir = "Spool folder (empty = default)",
  timeout_s = "Job timeout (s)",
  start_timeout_s = "Server start timeout (s)",
}

local function main()
  local current = {}
  for _, k in ipairs(lib.SETTING_KEYS) do
    local v = reaper.GetExtState(lib.SECTION, k)
    if v == "" then v = lib.DEFAULTS[k] end
    current[k] = v
  end
  local captions, values = {}, {}
  for i, k in ipairs(lib.SETTING_KEYS) do
    captions[i] = LABELS[k]
    values[i] = current[k]
  end
  local ok, answer = reaper.GetUserInputs("editorbot settings", #lib.SETTING_KEYS,
    -- captions are comma-separated; "separator=|" makes the values |-separated
    table.concat(captions, ",") .. ",separator=|,extrawidth=260", table.concat(values, "|"))
  if not ok then return end
  local new, i = {}, 0
  for field in (answer .. "|"):gmatch("([^|]*)|") do
    i = i + 1
    local key = lib.SETTING_KEYS[i]
    if key then new[key] = field:match("^%s*(.-)%s*$") end
  end
  if i ~= #lib.SETTING_KEYS then
    reaper.ShowMessageBox("Expected " .. #lib.SETTING_KEYS .. " fields, got " .. i .. ". Nothing saved.", "editorbot", 0)
    return
  end
  local problems = lib.check_settings(new)
  if #problems > 0 then
    reaper.ShowMessageBox("Nothing saved:\n" .. table.concat(problems, "\n"), "editorbot", 0)
    return
  end
  lib.save_settings(new)
end

main()
