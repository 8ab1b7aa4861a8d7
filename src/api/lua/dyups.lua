-- ngx.dyups: create, replace and delete whole upstreams from Lua (embedded
-- in the nginx module; `require "ngx.dyups"` needs no lua_package_path).
-- Each call returns the HTTP status and message the REST API would answer:
-- 200, "success"; 400, "add server failed: ..."; 404, ...
local ffi = require "ffi"
local C = ffi.C
-- The request (or timer's fake request) the caller runs for: the change
-- log goes where its ngx.log lines go.
local get_request = require("resty.core.base").get_request

pcall(ffi.cdef, [[
int ndu_dyups_update(void *r, const char *name, size_t name_len, const char *body, size_t body_len,
                     unsigned char *msg, size_t msg_cap, size_t *msg_len);
int ndu_dyups_delete(void *r, const char *name, size_t name_len, unsigned char *msg, size_t msg_cap,
                     size_t *msg_len);
]])

-- The message buffer; its size goes with every call.
local MSG_CAP = 512
local msg_buf = ffi.new("unsigned char[?]", MSG_CAP)
local msg_len = ffi.new("size_t[1]")

local _M = { _VERSION = "0.1" }

function _M.update(name, body)
    if type(name) ~= "string" or type(body) ~= "string" then
        return 400, "name and body must be strings"
    end
    local status = C.ndu_dyups_update(get_request(), name, #name, body, #body, msg_buf, MSG_CAP, msg_len)
    return status, ffi.string(msg_buf, msg_len[0])
end

function _M.delete(name)
    if type(name) ~= "string" then
        return 400, "name must be a string"
    end
    local status = C.ndu_dyups_delete(get_request(), name, #name, msg_buf, MSG_CAP, msg_len)
    return status, ffi.string(msg_buf, msg_len[0])
end

return _M
