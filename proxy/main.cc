#include "proxy/cli.h"

int main(int argc, char** argv) { return seamless::run_cli(argc, argv); }
