# Cross build for AArch64 Linux with Debian's g++-aarch64-linux-gnu; binaries run under qemu-aarch64
# (package qemu-user) with the target's libraries from /usr/aarch64-linux-gnu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# BOTH: the cross-built googletest is installed in a prefix outside the sysroot.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
find_program(TRIX_QEMU_AARCH64 qemu-aarch64)
if(TRIX_QEMU_AARCH64)
  # Lets gtest_discover_tests and ctest run the test binary.
  set(CMAKE_CROSSCOMPILING_EMULATOR ${TRIX_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
