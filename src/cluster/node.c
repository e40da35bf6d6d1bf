/* node.c - the running membership of this node (include/ringkv/cluster.h). */
#include "ringkv/cluster.h"
