JsonSchemaValue = dict
