#include <cstdio>

int odr_a();
int odr_b();

int main() {
  const int a = odr_a(), b = odr_b();
  if (a != 2 || b != 120) {
    std::fprintf(stderr, "odr: got %d and %d, want 2 and 120\n", a, b);
    return 1;
  }
  return 0;
}
