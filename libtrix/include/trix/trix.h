// The whole public API of libtrix.
#pragma once
#include "trix/error.h"
#include "trix/ffn.h"
#include "trix/format.h"
#include "trix/matmul.h"
#include "trix/memory.h"
#include "trix/model.h"
#include "trix/pack.h"
#include "trix/prepared.h"
#include "trix/quantize.h"
#include "trix/route.h"
#include "trix/signature.h"
#include "trix/version.h"
