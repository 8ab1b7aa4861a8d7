# Scale curves of scripts/bench.sh (scenario 4):
#   gnuplot -e "peers='scale-peers.dat'; dyups='scale-dyups.dat'; outfile='scale.png'" scale.gp
# peers: N add_us update_us downup_us list_us remove_us
# dyups: N post_create_us post_replace_us proxy_after_change_us get_one_us proxy_plain_us rps
set terminal pngcairo size 1500,560 font ",10" noenhanced
set output outfile
set datafile missing "NA"
set multiplot layout 1,3 title "dynamic upstream module: cost vs. size (medians, log-log)"
set logscale xy
set grid
set key top left
set ylabel "µs per request"
set xlabel "peers in one zone"
set title "query-string API on a zone upstream"
plot peers using 1:2 with linespoints title "add", \
     peers using 1:3 with linespoints title "weight update", \
     peers using 1:4 with linespoints title "down / up", \
     peers using 1:5 with linespoints title "list", \
     peers using 1:6 with linespoints title "remove"
set xlabel "run-time upstreams (dyups)"
set title "REST API and proxying, N run-time upstreams"
plot dyups using 1:2 with linespoints title "POST create", \
     dyups using 1:3 with linespoints title "POST replace", \
     dyups using 1:4 with linespoints title "1st proxied request after a POST", \
     dyups using 1:5 with linespoints title "GET /upstream/NAME", \
     dyups using 1:6 with linespoints title "proxied request, no change"
unset logscale y
set yrange [0:*]
set ylabel "requests/s"
set title "proxy_pass http://$host, N run-time upstreams"
plot dyups using 1:7 with linespoints title "req/s (wrk -t1 -c32)"
unset multiplot
