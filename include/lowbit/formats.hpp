#pragma once
// All number formats: the small floats, the E8M0 scale type, 4-bit integers, nibble
// packing, traits and conversion.
#include "lowbit/formats/convert.hpp"
#include "lowbit/formats/e8m0.hpp"
#include "lowbit/formats/float4.hpp"
#include "lowbit/formats/float6.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/formats/intn.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/formats/traits.hpp"
