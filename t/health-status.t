# check_status [html|csv|json]: nginx_upstream_check_module's status page
# over every checked peer, of configured upstreams (in order) then run-time
# ones; ?format= and ?status= as the C module reads them (a bad value is
# 400). interval=30000: each peer is checked once (the first check is due
# within a second), so rise and fall counts are exact; times are masked.
use lib 't/lib';
use NginxTest;
use NginxTest::Backend;

# The page at URI, with its last check times replaced by T.
sub page {
    my ($uri) = @_;
    my $r = http_get($uri);
    my $body = $r->{body};
    $body =~ s/"last_check": \d+/"last_check": T/g;
    $body =~ s{<td>\d{10}</td>}{<td>T</td>}g;
    return "$r->{status} $r->{headers}{'content-type'}\n$body";
}

# Whether every checked peer has been checked once.
sub all_checked {
    my $body = http_get('/status?format=json')->{body};
    return $body =~ /"total": (\d+)/ && $1 > 0 && $body !~ /"last_check": 0\b/;
}

$ENV{TEST_NGINX_CHECKED} = <<'NGINX';
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    check interval=30000 rise=1 fall=1 timeout=1000 type=http;
}
upstream plain {
    zone plain 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_9; location / { dyups_interface; } }
NGINX

run_tests();
__DATA__

=== TEST 1: csv, json and html over configured and run-time upstreams; ?status= filters, the index stays
--- http_config
$TEST_NGINX_CHECKED
--- config
location /status { check_status csv; }
location /html { check_status; }
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b = main::backend($p1);
is(http('POST', 'http://127.0.0.1:' . port(9) . '/upstream/dyhost',
        "server 127.0.0.1:$p1; check interval=30000 rise=1 fall=1 timeout=1000 type=tcp port=$p1;")->{status}, 200, 'POST');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&down=")->{status}, 200, 'an administrator\'s down');
ok(defined main::wait_until(5, \&main::all_checked), 'every peer checked once') or return;
is(main::page('/status'), "200 text/plain\n"
   . "0,backends,127.0.0.1:$p1,up,1,0,http,0\n"
   . "1,backends,127.0.0.1:$p2,down,0,1,http,0\n"
   . "2,dyhost,127.0.0.1:$p1,up,1,0,tcp,$p1\n", 'csv (the C module\'s)');
is(main::page('/status?status=down'), "200 text/plain\n1,backends,127.0.0.1:$p2,down,0,1,http,0\n", '?status=down');
is(main::page('/status?format=json&status=UP'), qq(200 application/json\n{"servers": {\n  "total": 2,\n  "generation": 1,\n  "server": [\n)
   . qq(    {"index": 0, "upstream": "backends", "name": "127.0.0.1:$p1", "status": "up", "rise": 1, "fall": 0, "type": "http", "port": 0, "down": false, "last_check": T, "last_error": ""},\n)
   . qq(    {"index": 2, "upstream": "dyhost", "name": "127.0.0.1:$p1", "status": "up", "rise": 1, "fall": 0, "type": "tcp", "port": $p1, "down": false, "last_check": T, "last_error": ""}\n)
   . qq(  ]\n}}\n), 'json, ?status=UP');
my $html = main::page('/html?status=down');
is($html, qq(200 text/html\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN\n"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n)
   . qq(<html xmlns="http://www.w3.org/1999/xhtml">\n<head>\n  <title>Nginx http upstream check status</title>\n</head>\n<body>\n)
   . qq(<h1>Nginx http upstream check status</h1>\n<h2>Check upstream server number: 1, generation: 1</h2>\n)
   . qq(<table style="background-color:white" cellspacing="0"        cellpadding="3" border="1">\n  <tr bgcolor="#C0C0C0">\n)
   . join('', map { "    <th>$_</th>\n" } 'Index', 'Upstream', 'Name', 'Status', 'Rise counts', 'Fall counts', 'Check type',
          'Check port', 'Admin state', 'Last check', 'Last error')
   . qq(  </tr>\n  <tr bgcolor="#FF0000">\n)
   . join('', map { "    <td>$_</td>\n" } 1, 'backends', "127.0.0.1:$p2", 'down', 0, 1, 'http', 0, 'down', 'T', 'connect failed')
   . qq(  </tr>\n</table>\n</body>\n</html>\n), 'html (the default), with the admin state, last check and last error');
is(main::page('/html?format=csv&status=down'), "200 text/plain\n1,backends,127.0.0.1:$p2,down,0,1,http,0\n", '?format= overrides');
is(main::page('/status?format=xml'), qq(400 text/plain\nformat must be html, csv or json (got "xml")\n), 'bad format');
is(main::page('/status?status=sideways'), qq(400 text/plain\nstatus must be up or down (got "sideways")\n), 'bad status');
is(http('POST', '/status', 'x')->{status}, 405, 'POST: 405');



=== TEST 2: check_status with a bad format
--- http_config
--- config
location /status { check_status xml; }
--- must_die
--- error_log
qr/\[emerg\] .*invalid parameter "xml" in "check_status": html, csv or json in \S+nginx\.conf:\d+/



=== TEST 3: no checked peer: an empty page
--- http_config
upstream plain {
    zone plain 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /status { check_status json; }
--- request
GET /status
--- response_body
{"servers": {
  "total": 0,
  "generation": 1,
  "server": [
  ]
}}
