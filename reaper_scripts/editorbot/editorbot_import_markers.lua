-- @description editorbot: import the markers and regions of an edit plan at the edit cursor
-- @author editorbot
-- @version 0.2.0
-- @noindex
-- @about
--   Asks for an editorbot plan (.plan.json from "editorbot edit", or the
--   .tsv export) and adds its markers and regions at the edit cursor, in one
--   undo block. Items are not touched. A damaged or incomplete file changes
--   nothing and says why.

local script_dir = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
local lib = dofile(script_dir .. "editorbot_lib.lua")

local function load(path)
  local text = lib.read_file(path)
  if not text then return nil, "cannot read " .. path end
  local plan, err
  if path:lower():match("%.tsv$") then
    plan, err = lib.parse_tsv(text)
  else
    plan, err = lib.json_decode(text)
    if plan ~= nil and (type(plan) ~= "table" or plan.schema ~= "editorbot.editplan/1") then
      plan, err = nil, "not an editorbot plan (schema editorbot.editplan/1)"
    end
  end
  if not plan then return nil, path .. ": " .. err end
  local checked, perr = lib.check_plan(plan)
  if not checked then return nil, path .. ": " .. perr end
  return checked
end

local function main()
  local ok, path = reaper.GetUserFileNameForRead("", "editorbot: plan to import markers from", "")
  if not ok then return end
  local plan, err = load(path)
  if not plan then
    reaper.ShowMessageBox(err .. "\n\nThe project was not changed.", "editorbot", 0)
    return
  end
  if #plan.markers == 0 then
    reaper.ShowMessageBox("The plan has no markers or regions.", "editorbot", 0)
    return
  end
  local base = reaper.GetCursorPosition()
  reaper.Undo_BeginBlock2(0)
  local n = lib.add_markers(plan.markers, base)
  reaper.Undo_EndBlock2(0, "editorbot: import " .. n .. " markers", -1)
  reaper.UpdateArrange()
end

main()
