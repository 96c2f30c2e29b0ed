set terminal svg size 720,440 dynamic noenhanced font 'sans,11' background rgb 'white'
set datafile missing '?'
set logscale x 2
set xtics (1, 2, 4, 8, 16)
set xrange [0.869565:18.4]
set xlabel 'Ps (gort procs, GOMAXPROCS, Boost.Fiber threads)'
set grid
set output 'skynet_chan-ns.svg'
set title 'skynet_chan: ns/leaf (lower is better)'
set ylabel 'ns/leaf'
set key top right
plot 'skynet_chan.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#0072b2' title 'gort', 'skynet_chan.dat' using 1:4 with linespoints lw 2 pt 7 lc rgb '#009e73' title 'go', 'skynet_chan.dat' using 1:6 with linespoints lw 2 pt 7 lc rgb '#e69f00' title 'boost.fiber'
set output 'skynet_chan-speedup.svg'
set title 'skynet_chan: speedup over 1 P (higher is better)'
set ylabel 'speedup'
set logscale y 2
set key top left
plot x / 1 with lines dt 2 lc rgb 'gray' title 'linear', 'skynet_chan.dat' using 1:3 with linespoints lw 2 pt 7 lc rgb '#0072b2' title 'gort', 'skynet_chan.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#009e73' title 'go', 'skynet_chan.dat' using 1:7 with linespoints lw 2 pt 7 lc rgb '#e69f00' title 'boost.fiber'
unset logscale y
