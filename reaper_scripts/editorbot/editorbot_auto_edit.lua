-- @description editorbot: auto-edit the selected item (or the time selection inside it)
-- @author editorbot
-- @version 0.2.0
-- @changelog
--   Effects reach Reaper: each plan effect becomes a take FX (ReaEQ, ReaVerbate, ReaDelay,
--   ReaComp, and the two JS effects installed with the scripts), inside the one undo step.
-- @provides
--   [main] editorbot_import_markers.lua
--   [main] editorbot_settings.lua
--   [nomain] editorbot_lib.lua
--   [effect] editorbot_distortion.jsfx
--   [effect] editorbot_width.jsfx
-- @about
--   # editorbot auto-edit
--
--   Sends the selected audio item (or the part of it inside the time
--   selection) to the editorbot server through its spool folder, shows the
--   server's progress with a Cancel button, and applies the returned edit
--   plan in one undo block: the part is split off and replaced by one item
--   per plan segment (moved, repeated, faded, re-timed with preserved pitch,
--   pitch-shifted, reversed, muted, coloured by action type), the rest of
--   the item follows the edit, each segment's effects become take FX (ReaEQ,
--   ReaVerbate, ReaDelay, ReaComp and the two editorbot JS effects), and the
--   plan's markers, regions and volume lane are added. Starts the server itself (the command set in
--   "editorbot_settings.lua") when it is not running. Reaper never waits on
--   the server: the script polls with reaper.defer.
--
--   A damaged result, a server that stops or never answers, and Cancel leave
--   the project exactly as it was and say why.

local script_dir = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
local lib = dofile(script_dir .. "editorbot_lib.lua")

local TITLE = "editorbot"
local W, H = 380, 120
local BUTTON = { x = W - 100, y = H - 40, w = 84, h = 26 }

local state = {}

local function finish(message)
  -- message: shown to the user; the window closes
  if state.paths and state.id then
    os.remove(lib.join(state.paths.alive, state.id))
  end
  gfx.quit()
  state.done = true
  if message then reaper.ShowMessageBox(message, TITLE, 0) end
end

local function give_up(message)
  -- stop waiting: take our request back (or ask the server to drop it)
  lib.cancel(state.paths, state.id)
  finish(message .. "\n\nThe project was not changed.")
end

local function draw(status, fraction)
  gfx.set(0.12, 0.12, 0.14, 1)
  gfx.rect(0, 0, W, H, 1)
  gfx.set(0.9, 0.9, 0.9, 1)
  gfx.x, gfx.y = 12, 12
  gfx.drawstr("editorbot: " .. status)
  -- progress bar
  gfx.set(0.3, 0.3, 0.34, 1)
  gfx.rect(12, 40, W - 24, 14, 1)
  if fraction then
    gfx.set(0.35, 0.7, 0.45, 1)
    gfx.rect(12, 40, math.floor((W - 24) * math.min(math.max(fraction, 0), 1)), 14, 1)
  end
  -- cancel button
  gfx.set(0.45, 0.2, 0.2, 1)
  gfx.rect(BUTTON.x, BUTTON.y, BUTTON.w, BUTTON.h, 1)
  gfx.set(1, 1, 1, 1)
  gfx.x, gfx.y = BUTTON.x + 18, BUTTON.y + 6
  gfx.drawstr("Cancel")
  gfx.update()
end

local function cancel_clicked()
  local inside = gfx.mouse_x >= BUTTON.x and gfx.mouse_x <= BUTTON.x + BUTTON.w
    and gfx.mouse_y >= BUTTON.y and gfx.mouse_y <= BUTTON.y + BUTTON.h
  local down = (gfx.mouse_cap & 1) == 1
  local clicked = state.pressed and not down and inside
  state.pressed = down and inside
  return clicked
end

local function apply(text)
  local result, plan = lib.check_result(text, state.id)
  lib.forget(state.paths, state.id)
  if not result then
    finish(plan .. "\n\nThe project was not changed.")
    return
  end
  if not lib.target_unchanged(state.target) then
    finish("The item was moved, resized or deleted while the server worked.\n\nThe project was not changed.")
    return
  end
  local summary, err = lib.apply_plan(state.target, plan)
  if not summary then
    finish(err)
    return
  end
  gfx.quit()
  state.done = true
  if summary.note then
    reaper.ShowConsoleMsg(string.format("editorbot: %d items, %d markers/regions, %.2f s. %s\n",
      summary.items, summary.markers, plan.duration_s, summary.note))
  end
end

local function loop()
  if state.done then return end
  local now = reaper.time_precise()
  local char = gfx.getchar()
  if char < 0 or char == 27 then
    give_up("Cancelled.")
    return
  end
  if cancel_clicked() then
    give_up("Cancelled.")
    return
  end
  local text = lib.read_result_text(state.paths, state.id)
  if text then
    apply(text)
    return
  end
  local age = lib.heartbeat_age(state.paths)
  local alive = age <= lib.HEARTBEAT_STALE_S
  if alive then
    state.seen_server = true
  elseif state.seen_server then
    give_up("The editorbot server stopped (no heartbeat for " .. math.floor(age) .. " s).")
    return
  elseif now - state.started > state.start_timeout_s then
    give_up(string.format("The editorbot server did not start within %d s.\nCommand: %s\nCheck the server command in editorbot_settings.",
      math.floor(state.start_timeout_s), state.command or "(none)"))
    return
  end
  if now - state.started > state.timeout_s then
    give_up(string.format("No answer from the editorbot server within %d s.", math.floor(state.timeout_s)))
    return
  end
  if now - state.last_alive >= 1 then
    lib.touch_alive(state.paths, state.id)
    state.last_alive = now
  end
  local p = lib.read_progress(state.paths, state.id)
  local status
  if p then
    status = string.format("%s (%d%%)", tostring(p.stage), math.floor(p.fraction * 100 + 0.5))
  elseif alive then
    status = "waiting for the server"
  else
    status = "starting the server"
  end
  draw(status, p and p.fraction)
  reaper.defer(loop)
end

local function main()
  local settings = lib.load_settings()
  local problems = lib.check_settings(settings)
  if #problems > 0 then
    reaper.ShowMessageBox("Settings need fixing (run editorbot_settings):\n" .. table.concat(problems, "\n"), TITLE, 0)
    return
  end
  local target, why = lib.find_target()
  if not target then
    reaper.ShowMessageBox(why, TITLE, 0)
    return
  end
  local paths = lib.spool_paths(settings.spool_dir)
  lib.ensure_spool(paths)
  local id = lib.new_request_id()
  local request = {
    schema = lib.REQUEST_SCHEMA, id = id, kind = "edit", audio = target.file,
    start_s = target.src_start_s, end_s = target.src_end_s,
    keep = lib.parse_keep(settings.keep), model = settings.model, created = os.time(),
  }
  if settings.target_duration_s ~= "" then request.target_duration_s = tonumber(settings.target_duration_s) end
  state = {
    id = id, paths = paths, target = target, started = reaper.time_precise(), last_alive = -math.huge,
    timeout_s = tonumber(settings.timeout_s), start_timeout_s = tonumber(settings.start_timeout_s),
  }
  local ok, err = lib.submit(paths, request)
  if not ok then
    reaper.ShowMessageBox(err, TITLE, 0)
    return
  end
  if lib.heartbeat_age(paths) > lib.HEARTBEAT_STALE_S then
    state.command = lib.server_command(settings)
    reaper.ExecProcess(state.command, -1) -- -1: start it, do not wait
  end
  gfx.init(TITLE, W, H)
  draw("sending", 0)
  reaper.defer(loop)
end

main()
