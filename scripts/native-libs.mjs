// Link flags for the native addon: LibTorch's CPU libraries, and the OpenMP build of OpenBLAS loaded
// first by its full path, so that libtorch's libblas.so.3 is that one and not whatever the system's
// alternatives select (the pthread build fights torch's OpenMP threads; the reference BLAS is 30x slower).
import { existsSync } from 'node:fs';

const openblas = '/usr/lib/x86_64-linux-gnu/openblas-openmp';
const flags = ['-ltorch_cpu', '-lc10', '-fopenmp'];
if (existsSync(`${openblas}/libblas.so.3`)) flags.unshift(`${openblas}/libblas.so.3`, `-Wl,-rpath,${openblas}`);
console.log(flags.join(' '));
