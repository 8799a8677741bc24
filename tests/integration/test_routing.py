"""Routing: matches on host, path (prefix, exact, regex), method and headers; actions proxy
(with prefix strip/add), redirect and respond; header rules per route."""
import pytest

from helpers import Client, assert_error_page, build_request, conn_tokens, hget, request


@pytest.fixture
def three(make_origin):
    return make_origin("api"), make_origin("web"), make_origin("admin")


def cfg(three, routes):
    api, web, admin = three
    return {"upstreams": {"api": {"servers": [api.addr]}, "web": {"servers": [web.addr]},
                          "admin": {"servers": [admin.addr]}},
            "routes": routes}


def who(p, target="/", host="example.com", method="GET", headers=(), body=None):
    r = request(p.port, method, target, host=host, headers=headers, body=body)
    if r.status != 200 or r.header("content-type") != "application/json":
        return r.status
    return r.json()["origin"]


def test_host_exact_case_insensitive(three, portico):
    p = portico(cfg(three, [{"match": {"host": "api.example.com"}, "proxy": "api"},
                            {"proxy": "web"}]))
    assert who(p, host="api.example.com") == "api"
    assert who(p, host="API.Example.COM") == "api"
    assert who(p, host="www.example.com") == "web"
    assert who(p, host="api.example.com.evil") == "web"


def test_host_match_ignores_port(three, portico):
    p = portico(cfg(three, [{"match": {"host": "api.example.com"}, "proxy": "api"},
                            {"proxy": "web"}]))
    assert who(p, host="api.example.com:8080") == "api"


def test_host_list(three, portico):
    p = portico(cfg(three, [{"match": {"host": ["a.test", "b.test"]}, "proxy": "api"},
                            {"proxy": "web"}]))
    assert who(p, host="a.test") == "api"
    assert who(p, host="b.test") == "api"
    assert who(p, host="c.test") == "web"


def test_host_wildcard(three, portico):
    p = portico(cfg(three, [{"match": {"host": "*.example.com"}, "proxy": "admin"},
                            {"proxy": "web"}]))
    assert who(p, host="a.example.com") == "admin"
    assert who(p, host="a.b.example.com") == "admin"
    assert who(p, host="example.com") == "web", "wildcard must not match the apex"
    assert who(p, host="xexample.com") == "web"
    assert who(p, host="a.example.com.evil") == "web"


def test_no_route_is_404(three, portico):
    p = portico(cfg(three, [{"match": {"host": "only.test"}, "proxy": "api"}]))
    r = request(p.port, "GET", "/anything", host="other.test")
    assert_error_page(r, 404)
    for o in three:
        assert o.heads == 0


def test_path_prefix(three, portico):
    p = portico(cfg(three, [{"match": {"path": "/api/"}, "proxy": "api"}, {"proxy": "web"}]))
    assert who(p, "/api/") == "api"
    assert who(p, "/api/x/y?z=1") == "api"
    assert who(p, "/apix") == "web"
    assert who(p, "/api") == "web"
    assert who(p, "/") == "web"


def test_path_exact(three, portico):
    p = portico(cfg(three, [{"match": {"path_exact": "/health"}, "proxy": "admin"},
                            {"proxy": "web"}]))
    assert who(p, "/health") == "admin"
    assert who(p, "/health?probe=1") == "admin", "the query is not part of the path"
    assert who(p, "/health/") == "web"
    assert who(p, "/healthz") == "web"


def test_path_regex(three, portico):
    p = portico(cfg(three, [{"match": {"path_regex": "^/v[0-9]+/"}, "proxy": "api"},
                            {"proxy": "web"}]))
    assert who(p, "/v1/users") == "api"
    assert who(p, "/v22/") == "api"
    assert who(p, "/v/users") == "web"
    assert who(p, "/x/v1/") == "web"


def test_method(three, portico):
    p = portico(cfg(three, [{"match": {"method": ["POST", "PUT"]}, "proxy": "admin"},
                            {"match": {"method": "GET"}, "proxy": "web"}]))
    assert who(p, method="POST", body=b"x") == "admin"
    assert who(p, method="PUT", body=b"x") == "admin"
    assert who(p, method="GET") == "web"
    r = request(p.port, "DELETE", "/")
    assert_error_page(r, 404)


def test_header_value_and_presence(three, portico):
    p = portico(cfg(three, [{"match": {"headers": {"X-Env": "prod"}}, "proxy": "admin"},
                            {"match": {"headers": {"X-Debug": "*"}}, "proxy": "api"},
                            {"proxy": "web"}]))
    assert who(p, headers=[("X-Env", "prod")]) == "admin"
    assert who(p, headers=[("x-env", "prod")]) == "admin", "field names are case-insensitive"
    assert who(p, headers=[("X-Env", "dev")]) == "web"
    assert who(p, headers=[("X-Debug", "anything")]) == "api"
    assert who(p, headers=[("X-Debug", "")]) == "api"
    assert who(p) == "web"


def test_all_conditions_must_hold(three, portico):
    p = portico(cfg(three, [{"match": {"host": "api.test", "path": "/v1/", "method": "POST",
                                       "headers": {"X-Key": "*"}}, "proxy": "api"},
                            {"proxy": "web"}]))
    good = dict(target="/v1/x", host="api.test", method="POST", headers=[("X-Key", "k")],
                body=b"")
    assert who(p, **good) == "api"
    assert who(p, **{**good, "host": "other.test"}) == "web"
    assert who(p, **{**good, "target": "/v2/x"}) == "web"
    assert who(p, **{**good, "method": "PUT"}) == "web"
    assert who(p, **{**good, "headers": []}) == "web"


def test_first_match_wins(three, portico):
    p = portico(cfg(three, [{"match": {"path": "/a/"}, "proxy": "admin"},
                            {"match": {"path": "/a/b/"}, "proxy": "api"},
                            {"proxy": "web"}]))
    assert who(p, "/a/b/c") == "admin"


def test_strip_and_add_prefix(three, portico):
    p = portico(cfg(three, [
        {"match": {"path": "/api/"}, "proxy": {"upstream": "api", "strip_prefix": "/api",
                                               "add_prefix": "/v2"}},
        {"match": {"path": "/s/"}, "proxy": {"upstream": "api", "strip_prefix": "/s"}},
        {"match": {"path_exact": "/whole"}, "proxy": {"upstream": "api",
                                                      "strip_prefix": "/whole"}},
        {"proxy": {"upstream": "web", "add_prefix": "/v3"}}]))
    assert request(p.port, "GET", "/api/users?x=1").json()["target"] == "/v2/users?x=1"
    assert request(p.port, "GET", "/s/a/b").json()["target"] == "/a/b"
    assert request(p.port, "GET", "/s/").json()["target"] == "/"
    assert request(p.port, "GET", "/whole?q").json()["target"] == "/?q"
    assert request(p.port, "GET", "/x/y").json()["target"] == "/v3/x/y"


def test_redirect_keep_path(three, portico):
    p = portico(cfg(three, [{"match": {"path": "/old/"},
                             "redirect": {"to": "https://new.example.com", "status": 301,
                                          "keep_path": True}}]))
    r = request(p.port, "GET", "/old/a/b?q=1")
    assert r.status == 301
    assert r.header("location") == "https://new.example.com/old/a/b?q=1"
    for o in three:
        assert o.heads == 0


def test_redirect_defaults_to_302(three, portico):
    p = portico(cfg(three, [{"redirect": {"to": "https://elsewhere.example/landing",
                                          "keep_path": False}}]))
    r = request(p.port, "GET", "/whatever?x=1")
    assert r.status == 302
    assert r.header("location") == "https://elsewhere.example/landing"


@pytest.mark.parametrize("status", [303, 307, 308])
def test_redirect_statuses(three, portico, status):
    p = portico(cfg(three, [{"redirect": {"to": "https://e.example/", "status": status}}]))
    assert request(p.port, "GET", "/").status == status


def test_respond_fixed(three, portico):
    p = portico(cfg(three, [{"match": {"path_exact": "/health"},
                             "respond": {"status": 200, "body": "healthy\n",
                                         "content_type": "text/plain"}},
                            {"match": {"path_exact": "/teapot"},
                             "respond": {"status": 418, "body": "short and stout\n"}},
                            {"match": {"path_exact": "/json"},
                             "respond": {"body": "{}", "content_type": "application/json"}}]))
    r = request(p.port, "GET", "/health")
    assert r.status == 200 and r.body == b"healthy\n"
    assert r.header("content-type").startswith("text/plain")
    assert r.header("content-length") == "8"
    r = request(p.port, "GET", "/teapot")
    assert r.status == 418 and r.body == b"short and stout\n"
    assert r.header("content-type").startswith("text/plain")
    r = request(p.port, "GET", "/json")
    assert r.status == 200 and r.body == b"{}"
    assert r.header("content-type") == "application/json"
    for o in three:
        assert o.heads == 0


def test_respond_to_head_and_post_keeps_connection(three, portico):
    p = portico(cfg(three, [{"respond": {"status": 200, "body": "fixed\n"}}]))
    with Client(p.port) as c:
        r = c.request("HEAD", "/")
        assert r.status == 200 and r.body == b"" and r.header("content-length") == "6"
        # The body of a POST answered locally must be consumed (or the connection closed),
        # never read as the next request.
        c.send(build_request("POST", "/", body=b"GET /evil HTTP/1.1\r\nHost: x\r\n\r\n"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"fixed\n"
        if "close" in conn_tokens(r.headers):
            assert c.closed()
            return
        r = c.request("GET", "/again")
        assert r.status == 200 and r.body == b"fixed\n"
        assert not c.closed(0.3)


def test_request_header_rules(three, portico):
    p = portico(cfg(three, [{"proxy": "api",
                             "request_headers": {"add": {"X-A": "1"}, "set": {"X-B": "2"},
                                                 "remove": ["X-C"]}}]))
    r = request(p.port, "GET", "/", headers=[("X-A", "0"), ("X-B", "old"), ("X-B", "older"),
                                              ("X-C", "gone"), ("X-D", "kept")])
    h = r.json()["headers"]
    assert hget(h, "x-a") == ["0", "1"]
    assert hget(h, "x-b") == ["2"]
    assert hget(h, "x-c") == []
    assert hget(h, "x-d") == ["kept"]


def test_request_header_set_when_absent(three, portico):
    p = portico(cfg(three, [{"proxy": "api", "request_headers": {"set": {"X-B": "2"}}}]))
    h = request(p.port, "GET", "/").json()["headers"]
    assert hget(h, "x-b") == ["2"]


def test_response_header_rules(three, portico):
    p = portico(cfg(three, [{"proxy": "api",
                             "response_headers": {"set": {"X-Frame-Options": "DENY"},
                                                  "add": {"X-Added": "yes"},
                                                  "remove": ["X-Internal"]}}]))
    r = request(p.port, "GET", "/?hdr=X-Frame-Options:SAMEORIGIN&hdr=X-Internal:secret"
                                "&hdr=X-Other:1")
    assert r.all("x-frame-options") == ["DENY"]
    assert r.all("x-added") == ["yes"]
    assert r.all("x-internal") == []
    assert r.all("x-other") == ["1"]


def test_header_rules_apply_per_route(three, portico):
    p = portico(cfg(three, [{"match": {"path": "/a/"}, "proxy": "api",
                             "request_headers": {"set": {"X-Route": "a"}}},
                            {"proxy": "web", "request_headers": {"set": {"X-Route": "b"}}}]))
    assert hget(request(p.port, "GET", "/a/1").json()["headers"], "x-route") == ["a"]
    assert hget(request(p.port, "GET", "/b/1").json()["headers"], "x-route") == ["b"]


def test_route_per_request_on_one_connection(three, portico):
    p = portico(cfg(three, [{"match": {"path": "/api/"}, "proxy": "api"}, {"proxy": "web"}]))
    with Client(p.port) as c:
        seq = []
        for t in ("/api/1", "/2", "/api/3", "/4"):
            seq.append(c.request("GET", t).json()["origin"])
    assert seq == ["api", "web", "api", "web"]
