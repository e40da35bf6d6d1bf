/* hints.c - writes held for a replica that did not take them (store.h). */
#include "ringkv/store.h"
