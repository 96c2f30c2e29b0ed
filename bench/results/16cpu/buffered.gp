set terminal svg size 720,440 dynamic noenhanced font 'sans,11' background rgb 'white'
set datafile missing '?'
set logscale x 2
set xtics (1, 2, 4, 8, 16)
set xrange [0.869565:18.4]
set xlabel 'Ps (gort procs, GOMAXPROCS, Boost.Fiber threads)'
set grid
set output 'buffered-ns.svg'
set title 'buffered: ns/item (lower is better)'
set ylabel 'ns/item'
set key top right
plot 'buffered.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#0072b2' title 'gort', 'buffered.dat' using 1:4 with linespoints lw 2 pt 7 lc rgb '#009e73' title 'go', 'buffered.dat' using 1:6 with linespoints lw 2 pt 7 lc rgb '#e69f00' title 'boost.fiber'
set output 'buffered-speedup.svg'
set title 'buffered: speedup over 1 P (higher is better)'
set ylabel 'speedup'
set logscale y 2
set key top left
plot x / 1 with lines dt 2 lc rgb 'gray' title 'linear', 'buffered.dat' using 1:3 with linespoints lw 2 pt 7 lc rgb '#0072b2' title 'gort', 'buffered.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#009e73' title 'go', 'buffered.dat' using 1:7 with linespoints lw 2 pt 7 lc rgb '#e69f00' title 'boost.fiber'
unset logscale y
