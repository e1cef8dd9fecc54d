"""C++ and CUDA sources of the box-filter kernels (shipped as ``boxpose._kernels``, built on first use)."""
