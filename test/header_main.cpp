// Links the per-header TUs generated from header_tu.cpp.in into one program.
int main() { return 0; }
