# With error_log at debug level (Debian's nginx is built --with-debug),
# nginx logs every timer it runs, reading the timer's connection: the
# module's sync timer must survive that (it once crashed every worker).
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: workers run the dyups sync timer at debug log level
--- needs_debug
--- log_level: debug
--- http_config
dyups_read_msg_timeout 100ms;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
my @workers = worker_pids();
# The sync timer has no connection: nginx logs it with fd -1.
my $fired = sub { my $n = () = error_log_text() =~ /event timer del: -1: /g; $n };
ok(poll_until(sub { $fired->() >= 6 }, 10, 'the sync timer fired several times'), 'timer fired at debug level');
is(http_get('/list')->{body}, "host1\n", 'nginx still answers');
is_deeply([sort { $a <=> $b } worker_pids()], [sort { $a <=> $b } @workers], 'no worker was replaced');
