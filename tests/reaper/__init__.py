"""Tests of the Reaper Lua scripts, run in Lua 5.4 against a Python model of the ReaScript API."""
